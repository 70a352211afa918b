"""Azure resource roles through Azure Resource Manager, with real msal and real HTTP against
the stub's ARM routes: the token for ARM's scope, grant and revoke requests under stable
names, throttling and refusals, proof of effect, eligibilities written back and imported for
a configured subscription, and drift for assignments made outside the portal."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from activations.models import ActivationRequest
from activations.services import activation_request
from activations.services import activation_revoke as revoke
from alerts.models import Alert
from audit.models import AuditEvent
from entra.arm import ArmClient, get_arm
from entra.models import DriftFinding, ImportedEligibility
from entra.services import entra_sync_run
from entra.tests.conftest import ALICE, BOB, SERVICE_PRINCIPAL, contoso
from entra.tests.stub import ARM, GRAPH
from roles.directory_services import directory_effect_check, directory_outbox_drain
from roles.models import DirectoryOperation, EligibleAssignment, Role
from roles.services import eligible_assign, eligible_extend, eligible_remove
from tests.factories import EligibleAssignmentFactory, UserFactory

pytestmark = pytest.mark.django_db
SUB = "a1b2c3d4-0000-4000-8000-000000000001"
OTHER_SUB = "a1b2c3d4-0000-4000-8000-000000000002"
SUBSCRIPTION = f"/subscriptions/{SUB}"
PAYROLL_RG = f"{SUBSCRIPTION}/resourceGroups/rg-payroll"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
UNKNOWN_ROLE = "deadbeef-0000-4000-8000-000000000000"
STRANGER = "0f000000-0000-4000-8000-00000000000f"
AUTH = "/providers/Microsoft.Authorization"
ASSIGNMENT_REQUESTS = f"{PAYROLL_RG}{AUTH}/roleAssignmentScheduleRequests/"
INSTANCES = f"{PAYROLL_RG}{AUTH}/roleAssignmentScheduleInstances"


@pytest.fixture
def arm_settings(entra_settings):
    entra_settings.ENTRA_ARM_URL = ARM
    entra_settings.ENTRA_ARM_SUBSCRIPTIONS = []
    return entra_settings


@pytest.fixture
def arm(arm_settings, graph):
    return get_arm()


@pytest.fixture
def alice(db):
    return UserFactory(username="alice@contoso.example", external_id=ALICE)


@pytest.fixture
def bob(db):
    return UserFactory(username="bob@contoso.example", external_id=BOB)


def azure_role(guid) -> Role:
    return Role.objects.get(kind="azure", template_id=guid)


def activate_azure(user, *, scope=PAYROLL_RG, role_guid=CONTRIBUTOR, now=None, **extra):
    """A granted activation of an Azure role at an ARM scope (the role needs no approval)."""
    now = now or timezone.now()
    role = azure_role(role_guid)
    role.settings.require_approval = False
    role.settings.save()
    eligible = EligibleAssignmentFactory(user=user, role=role, scope=scope)
    DirectoryOperation.objects.filter(eligible=eligible).delete()  # made by the factory, not written back
    request = activation_request(
        requester=user,
        eligible=eligible,
        duration=timedelta(hours=1),
        justification="Incident 42",
        mfa_verified_at=now,
        now=now,
        **extra,
    )
    assert request.status == "granted", request.status
    return request


def definition_id(guid, subscription=SUB):
    return f"/subscriptions/{subscription}{AUTH}/roleDefinitions/{guid}"


# --- The client ----------------------------------------------------------------------------------


def test_the_arm_client_asks_the_same_app_for_a_token_of_arms_scope(arm, graph, stub):
    assert isinstance(arm, ArmClient) and arm.client_id == graph.client_id
    assert arm.scope == f"{ARM}/.default"
    assert arm._application() is graph._application()  # one msal application, one token cache

    arm.get(INSTANCES)

    [token_call] = [r for r in stub.received if r.path.endswith("/oauth2/v2.0/token")]
    assert token_call.body["scope"] == f"{ARM}/.default"
    [listing] = stub.requests_to("GET", INSTANCES)
    assert listing.query["api-version"] == "2020-10-01" and listing.status == 200


def test_arm_refuses_a_token_issued_for_graph(arm, graph, stub):
    graph_token, _ = graph.token()
    answer = requests.Session().get(
        f"{stub.base_url}{INSTANCES}",
        params={"api-version": "2020-10-01"},
        headers={"Authorization": f"Bearer {graph_token}"},
        timeout=5,
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    assert stub.token_scopes[graph_token] == f"{GRAPH}/.default"


def test_reads_follow_arms_next_links_and_wait_out_a_429(arm, stub, sleeps):
    stub.page_size = 2
    for index in range(5):
        stub.arm.add_assignment(f"0{index}000000-0000-4000-8000-000000000000", READER, PAYROLL_RG)
    stub.fail("GET", INSTANCES, 429, headers={"Retry-After": "3"})

    found = list(arm.all(INSTANCES))

    assert len(found) == 5 and sleeps == [3.0]
    reads = stub.requests_to("GET", INSTANCES)
    assert [r.status for r in reads] == [429, 200, 200, 200]
    assert reads[2].query["$skiptoken"] == "2" and reads[2].query["api-version"] == "2020-10-01"


# --- Grant and revoke ------------------------------------------------------------------------------


def test_a_grant_is_an_admin_assign_request_at_the_scope(arm, stub, alice):
    request = activate_azure(alice, ticket_number="CHG-7", ticket_system="ServiceNow")

    assert directory_outbox_drain() == 1

    [put] = stub.arm.puts("roleAssignmentScheduleRequests")
    assert put.path.startswith(ASSIGNMENT_REQUESTS) and put.query["api-version"] == "2020-10-01"
    properties = put.body["properties"]
    assert properties["principalId"] == ALICE
    assert properties["roleDefinitionId"] == definition_id(CONTRIBUTOR)
    assert properties["requestType"] == "AdminAssign"
    assert properties["justification"] == "Granted in PIM Portal (an activation): Incident 42"
    assert properties["ticketInfo"] == {"ticketNumber": "CHG-7", "ticketSystem": "ServiceNow"}
    expiration = properties["scheduleInfo"]["expiration"]
    assert expiration["type"] == "AfterDateTime"
    assert expiration["endDateTime"] == request.active_assignment.ends_at.isoformat().replace("+00:00", "Z")
    op = DirectoryOperation.objects.get(operation="grant")
    assert op.status == "done" and op.effect == "waiting"
    assert op.result["status"] == "Provisioned" and op.result["request_name"] == put.path.rsplit("/", 1)[1]
    [instance] = stub.arm.assignments
    assert instance["properties"]["scope"] == PAYROLL_RG


def test_a_revoke_is_an_admin_remove_request(arm, stub, alice):
    request = activate_azure(alice)
    directory_outbox_drain()

    revoke(actor=None, request=ActivationRequest.objects.get(pk=request.pk), reason="Done early")
    assert directory_outbox_drain() == 1

    put = stub.arm.puts("roleAssignmentScheduleRequests")[-1]
    properties = put.body["properties"]
    assert properties["requestType"] == "AdminRemove" and "scheduleInfo" not in properties
    assert properties["principalId"] == ALICE and properties["roleDefinitionId"] == definition_id(CONTRIBUTOR)
    assert properties["justification"].startswith("Revoked in PIM Portal (an activation)")
    assert stub.arm.assignments == []
    assert DirectoryOperation.objects.get(operation="revoke").result["status"] == "Revoked"


def test_request_names_are_stable_per_operation_so_a_lost_answer_is_not_a_second_request(arm, stub, alice):
    activate_azure(alice)
    stub.arm.lose_answers = 1  # ARM carries out the PUT, the answer is lost (500)
    now = timezone.now()

    assert directory_outbox_drain(now=now) == 0
    op = DirectoryOperation.objects.get(operation="grant")
    assert op.status == "pending" and "500" in op.last_error
    assert directory_outbox_drain(now=now + timedelta(minutes=10)) == 1

    first, retry = stub.arm.puts("roleAssignmentScheduleRequests")
    assert first.path == retry.path  # the same name (the start moved on: "now" is later)
    assert first.body["properties"]["requestType"] == retry.body["properties"]["requestType"] == "AdminAssign"
    assert len(stub.arm.assignments) == 1 and len(stub.arm.requests) == 1
    op.refresh_from_db()
    assert op.status == "done" and op.result["status"] == "Provisioned"


def test_request_names_differ_between_operations(arm, stub, alice, bob):
    activate_azure(alice)
    activate_azure(bob)
    directory_outbox_drain()
    names = {put.path.rsplit("/", 1)[1] for put in stub.arm.puts()}
    assert len(names) == 2


def test_what_arm_already_has_counts_as_done(arm, stub, alice):
    stub.arm.add_assignment(ALICE, CONTRIBUTOR, PAYROLL_RG)
    activate_azure(alice)

    assert directory_outbox_drain() == 1

    assert DirectoryOperation.objects.get().result["status"] == "already assigned"


def test_a_revoke_of_what_arm_no_longer_has_counts_as_removed(arm, stub, alice):
    request = activate_azure(alice)
    directory_outbox_drain()
    stub.arm.assignments.clear()  # removed in Azure meanwhile

    revoke(actor=None, request=ActivationRequest.objects.get(pk=request.pk), reason="Done early")
    assert directory_outbox_drain() == 1

    op = DirectoryOperation.objects.get(operation="revoke")
    assert op.status == "done" and op.result["status"] == "already removed"
    assert op.result["code"] == "RoleAssignmentDoesNotExist"


def test_a_429_is_retried_later_and_then_succeeds(arm, stub, alice):
    activate_azure(alice)
    stub.fail("PUT", ASSIGNMENT_REQUESTS, 429, headers={"Retry-After": "120"})
    now = timezone.now()

    assert directory_outbox_drain(now=now) == 0
    op = DirectoryOperation.objects.get()
    assert op.status == "pending" and op.next_attempt_at >= now + timedelta(seconds=120)
    assert "Azure Resource Manager answered 429" in op.last_error
    assert directory_outbox_drain(now=now + timedelta(seconds=121)) == 1
    op.refresh_from_db()
    assert op.status == "done" and len(stub.arm.assignments) == 1


def test_a_403_is_permanent_and_says_which_azure_role_the_app_needs(arm, stub, alice):
    stub.arm.forbidden.add(SUBSCRIPTION)
    activate_azure(alice)

    assert directory_outbox_drain() == 0

    op = DirectoryOperation.objects.get()
    assert op.status == "failed" and op.attempts == 1
    assert "AuthorizationFailed" in op.last_error
    assert "give its service principal “User Access Administrator” on the subscription" in op.last_error
    assert AuditEvent.objects.filter(action="directory.grant_failed", outcome="failure").exists()
    assert directory_outbox_drain(now=timezone.now() + timedelta(hours=1)) == 0  # not retried
    assert len(stub.arm.puts()) == 1


def test_a_policy_refusal_names_the_rules(arm, stub, alice):
    stub.arm.policy_failure = '"ExpirationRule","JustificationRule"'
    activate_azure(alice)

    directory_outbox_drain()

    op = DirectoryOperation.objects.get()
    assert op.status == "failed"
    assert "Azure's role policy refused the AdminAssign (ExpirationRule, JustificationRule)" in op.last_error


def test_azure_roles_at_the_root_stay_in_the_portal(arm, stub, alice):
    activate_azure(alice, scope="/")

    assert directory_outbox_drain() == 1

    op = DirectoryOperation.objects.get()
    assert op.result == {"skipped": "not an Entra directory role"} and op.effect == ""
    assert stub.arm.puts() == [] and stub.graph_calls() == []


# --- Proof of effect -------------------------------------------------------------------------------


def _check(op, seconds):
    return directory_effect_check(operation_id=op.pk, now=op.completed_at + timedelta(seconds=seconds))


def test_a_grant_that_appears_late_is_effective_when_the_instance_shows(arm, stub, alice):
    stub.apply_after_reads = 3  # reads of a page: the first check reads two
    stub.page_size = 1  # the principal's instances over several pages
    stub.arm.add_assignment(ALICE, READER, PAYROLL_RG)  # another role: not the one granted
    stub.arm.add_assignment(ALICE, CONTRIBUTOR, SUBSCRIPTION)  # another scope
    activate_azure(alice)
    directory_outbox_drain()
    op = DirectoryOperation.objects.get(operation="grant")

    assert _check(op, 5) is False
    first, second = stub.requests_to("GET", INSTANCES)  # two pages: two instances, none granted
    assert first.query["$filter"] == f"principalId eq '{ALICE}'" and second.query["$skiptoken"] == "1"
    assert _check(op, 15) is True

    op.refresh_from_db()
    assert op.effect == "effective" and op.effective_at == op.completed_at + timedelta(seconds=15)
    assert AuditEvent.objects.filter(action="directory.grant_effective").exists()


def test_a_grant_that_never_appears_is_unconfirmed_and_alerted(
    arm, stub, alice, settings, django_capture_on_commit_callbacks
):
    settings.PIM_DIRECTORY_EFFECT_ALERT_MINUTES = 5
    settings.PIM_DIRECTORY_EFFECT_GIVE_UP_MINUTES = 60
    stub.apply_after_reads = None
    activate_azure(alice)
    directory_outbox_drain()
    op = DirectoryOperation.objects.get(operation="grant")

    with django_capture_on_commit_callbacks(execute=True):
        assert _check(op, 5 * 60) is False
    assert Alert.objects.filter(kind="directory_changes_not_effective", status="open").exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(op, 60 * 60) is False

    op.refresh_from_db()
    assert op.effect == "unconfirmed"
    assert AuditEvent.objects.get(action="directory.grant_unconfirmed").outcome == "failure"


def test_a_revoke_is_effective_once_the_instance_is_gone(arm, stub, alice):
    request = activate_azure(alice)
    directory_outbox_drain()
    stub.apply_after_reads = 1
    revoke(actor=None, request=ActivationRequest.objects.get(pk=request.pk), reason="Done")
    directory_outbox_drain()
    op = DirectoryOperation.objects.get(operation="revoke")

    assert _check(op, 5) is True  # the read that applied the removal no longer lists it

    op.refresh_from_db()
    assert op.effect == "effective"


# --- Eligibilities written back ----------------------------------------------------------------------


def test_eligibilities_of_azure_roles_are_written_back_as_eligibility_requests(arm, stub, alice):
    now = timezone.now()
    eligible = eligible_assign(
        actor=None,
        role=azure_role(CONTRIBUTOR),
        principal=alice,
        scope=PAYROLL_RG,
        ends_at=now + timedelta(days=30),
        justification="Payroll on-call",
        now=now,
    )
    directory_outbox_drain()
    eligible_extend(actor=None, assignment=eligible, ends_at=now + timedelta(days=60), now=now)
    directory_outbox_drain()
    eligible_remove(
        actor=None, assignment=EligibleAssignment.objects.get(pk=eligible.pk), reason="Left", now=now
    )
    directory_outbox_drain()

    puts = stub.arm.puts("roleEligibilityScheduleRequests")
    assert [p.body["properties"]["requestType"] for p in puts] == [
        "AdminAssign",
        "AdminExtend",
        "AdminRemove",
    ]
    assert all(p.path.startswith(f"{PAYROLL_RG}{AUTH}/roleEligibilityScheduleRequests/") for p in puts)
    assert len({p.path for p in puts}) == 3
    assert puts[0].body["properties"]["justification"] == (
        "Made eligible in PIM Portal (an eligible assignment): Payroll on-call"
    )
    assert stub.arm.eligibilities == []
    assert set(DirectoryOperation.objects.values_list("status", flat=True)) == {"done"}


def test_extending_an_eligibility_arm_does_not_have_assigns_it(arm, stub, alice):
    now = timezone.now()
    eligible = eligible_assign(
        actor=None,
        role=azure_role(CONTRIBUTOR),
        principal=alice,
        scope=PAYROLL_RG,
        ends_at=now + timedelta(days=30),
        now=now,
    )
    directory_outbox_drain()
    stub.arm.eligibilities.clear()  # removed in Azure meanwhile

    eligible_extend(actor=None, assignment=eligible, ends_at=now + timedelta(days=60), now=now)
    directory_outbox_drain()

    puts = stub.arm.puts("roleEligibilityScheduleRequests")
    assert [p.body["properties"]["requestType"] for p in puts] == [
        "AdminAssign",
        "AdminExtend",
        "AdminAssign",
    ]
    assert len({p.path for p in puts}) == 3  # a name per request, even within one operation
    [again] = stub.arm.eligibilities
    assert (
        again["properties"]["endDateTime"]
        == puts[-1].body["properties"]["scheduleInfo"]["expiration"]["endDateTime"]
    )


def test_an_azure_eligibility_at_the_root_is_not_written_back(arm, stub, alice):
    now = timezone.now()
    role = azure_role(CONTRIBUTOR)
    eligible_assign(
        actor=None, role=role, principal=alice, scope="/", ends_at=now + timedelta(days=9), now=now
    )
    assert not DirectoryOperation.objects.exists()


# --- Import and drift for configured subscriptions -----------------------------------------------


@pytest.fixture
def subscription(arm, arm_settings, stub, alice, bob):
    """The stub tenant (its users include Alice and Bob) with SUB configured."""
    contoso(stub, page_size=2)
    arm_settings.ENTRA_ARM_SUBSCRIPTIONS = [SUB]
    return stub


def test_eligibilities_of_a_subscription_are_imported_over_pages(subscription, alice, bob):
    stub = subscription
    ends = (timezone.now() + timedelta(days=90)).replace(microsecond=0)
    stub.arm.add_eligibility(ALICE, CONTRIBUTOR, PAYROLL_RG, endDateTime=ends.isoformat())
    end = {"endDateTime": ends.isoformat()}
    stub.arm.add_eligibility(BOB, READER, SUBSCRIPTION, **end)
    stub.arm.add_eligibility(
        BOB, CONTRIBUTOR, f"{PAYROLL_RG}/providers/Microsoft.Sql/servers/payroll-db", **end
    )
    stub.arm.add_eligibility(ALICE, READER, "/providers/Microsoft.Management/managementGroups/root-mg", **end)
    stub.arm.add_eligibility(BOB, READER, f"/subscriptions/{OTHER_SUB}", **end)  # not listed at SUB
    stub.arm.add_eligibility(STRANGER, READER, SUBSCRIPTION, **end)
    stub.arm.add_eligibility(ALICE, UNKNOWN_ROLE, SUBSCRIPTION, **end)

    run = entra_sync_run()

    mine = EligibleAssignment.objects.filter(role__kind="azure").order_by("scope")
    assert [(e.principal.external_id, e.role.template_id, e.scope) for e in mine] == [
        (BOB, READER, SUBSCRIPTION),
        (ALICE, CONTRIBUTOR, PAYROLL_RG),
        (BOB, CONTRIBUTOR, f"{PAYROLL_RG}/providers/Microsoft.Sql/servers/payroll-db"),
    ]
    assert mine.get(user__external_id=ALICE).ends_at == ends
    assert run.counts["arm_eligibilities"] == {"created": 3, "elsewhere": 1, "errors": 2}
    messages = " ".join(e["message"] for e in run.errors if e["kind"] == "arm_eligibilities")
    assert f"{STRANGER} is not an imported user or group" in messages
    assert f"The role {UNKNOWN_ROLE} is not in the catalog" in messages
    assert run.status == "partial"
    eligibility_reads = stub.requests_to("GET", f"{SUBSCRIPTION}{AUTH}/roleEligibilityScheduleInstances")
    assert len(eligibility_reads) == 3 and "$filter" not in eligibility_reads[0].query  # 6 on pages of 2
    assert not stub.arm.puts()  # what comes from ARM is not written back

    stub.arm.eligibilities = [e for e in stub.arm.eligibilities if e["properties"]["principalId"] != BOB]
    again = entra_sync_run()

    assert again.counts["arm_eligibilities"]["removed"] == 2
    assert EligibleAssignment.objects.filter(role__kind="azure", ended_at__isnull=True).count() == 1
    assert ImportedEligibility.objects.filter(eligible__role__kind="azure").count() == 1
    assert not stub.arm.puts()


def test_an_assignment_made_outside_the_portal_is_drift_and_is_removed(
    subscription, alice, bob, arm_settings
):
    stub = subscription
    activate_azure(alice)  # made by the portal: not drift
    directory_outbox_drain()
    stub.arm.add_assignment(BOB, CONTRIBUTOR, PAYROLL_RG)  # made outside the portal
    stub.arm.add_assignment(BOB, READER, SUBSCRIPTION, assignmentType="Activated")  # PIM's own activation
    stub.arm.add_assignment(SERVICE_PRINCIPAL, READER, SUBSCRIPTION, principalType="ServicePrincipal")
    stub.arm.add_assignment(BOB, READER, f"/subscriptions/{OTHER_SUB}")

    run = entra_sync_run()

    findings = DriftFinding.objects.filter(source="arm").order_by("principal_id")
    assert [(f.principal_id, f.role_template_id, f.directory_scope, f.principal_type) for f in findings] == [
        (BOB, CONTRIBUTOR, PAYROLL_RG, "user"),
        (SERVICE_PRINCIPAL, READER, SUBSCRIPTION, "other"),
    ]
    bob_finding = findings[0]
    assert bob_finding.user.external_id == BOB and bob_finding.role == azure_role(CONTRIBUTOR)
    assert run.counts["arm_drift"] == {"portal": 1, "activated": 1, "detected": 2}
    assert AuditEvent.objects.filter(action="entra.drift_detected", scope=PAYROLL_RG).exists()
    assert not DriftFinding.objects.filter(source="entra").exists()

    again = entra_sync_run()  # reported once; Entra's drift step leaves ARM's findings alone
    assert again.counts["arm_drift"]["open"] == 2
    assert DriftFinding.objects.filter(resolved_at__isnull=True).count() == 2

    arm_settings.ENTRA_REMOVE_DRIFT = True
    removal = entra_sync_run()

    put = stub.arm.puts("roleAssignmentScheduleRequests")[-1]
    assert put.path.startswith(ASSIGNMENT_REQUESTS)
    assert put.body["properties"]["requestType"] == "AdminRemove"
    assert put.body["properties"]["principalId"] == BOB
    assert put.body["properties"]["justification"] == "Removed by PIM Portal: assigned outside the portal."
    assert removal.counts["arm_drift"]["removed"] == 1 and removal.counts["arm_drift"]["kept"] == 1
    bob_finding.refresh_from_db()
    assert bob_finding.resolution == "removed"
    assert AuditEvent.objects.filter(action="entra.drift_removed", scope=PAYROLL_RG).exists()
    remaining = {(a["properties"]["principalId"], a["properties"]["scope"]) for a in stub.arm.assignments}
    assert (BOB, PAYROLL_RG) not in remaining and (ALICE, PAYROLL_RG) in remaining


def test_drift_that_goes_away_in_arm_is_resolved(subscription, bob):
    stub = subscription
    stub.arm.add_assignment(BOB, CONTRIBUTOR, PAYROLL_RG)
    entra_sync_run()
    stub.arm.assignments.clear()

    run = entra_sync_run()

    assert run.counts["arm_drift"]["resolved"] == 1
    assert DriftFinding.objects.get(source="arm").resolution == "gone"


def test_a_subscription_arm_refuses_is_an_error_of_the_run_and_the_others_go_on(
    subscription, arm_settings, bob
):
    stub = subscription
    arm_settings.ENTRA_ARM_SUBSCRIPTIONS = [OTHER_SUB, SUB]
    stub.arm.forbidden.add(f"/subscriptions/{OTHER_SUB}")
    ends = (timezone.now() + timedelta(days=30)).isoformat()
    stub.arm.add_eligibility(BOB, READER, SUBSCRIPTION, endDateTime=ends)

    run = entra_sync_run()

    assert run.status == "partial"
    assert run.counts["arm_eligibilities"]["errors"] == 1 and run.counts["arm_drift"]["errors"] == 1
    assert run.counts["arm_eligibilities"]["created"] == 1
    assert all("AuthorizationFailed" in e["message"] for e in run.errors if e["kind"].startswith("arm"))


def test_without_subscriptions_the_sync_never_calls_arm(arm, stub):
    entra_sync_run()
    assert not [r for r in stub.received if r.path.startswith("/subscriptions/")]
