"""PIM for Groups in Entra (entra.groups): a governed group's member and owner roles are
provisioned through identityGovernance/privilegedAccess/group/ and imported from it, with real
msal and real HTTP against the stub (which, as Graph, refuses instance reads without a $filter)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import DirectoryGroup, User
from activations import jobs
from activations.services import activation_request
from audit.models import AuditEvent
from entra.groups import ASSIGNMENT_INSTANCES, import_group_pim
from entra.models import DriftFinding, ImportedEligibility
from entra.services import entra_sync_run
from entra.sync import Tally
from entra.tests.conftest import ALICE, BOB, DAVE, SERVICE_PRINCIPAL, TIER0, contoso
from roles.directory_services import directory_effect_check, directory_outbox_drain
from roles.models import ActiveAssignment, DirectoryOperation, EligibleAssignment, Role
from roles.services import eligible_assign, eligible_remove, group_govern
from tests.factories import EligibleAssignmentFactory, UserFactory

pytestmark = pytest.mark.django_db
BASE = "/v1.0/identityGovernance/privilegedAccess/group/"
PAYROLL = "93000000-0000-4000-8000-000000000003"  # a security group, not role-assignable


@pytest.fixture
def alice(db):
    return UserFactory(username="alice@contoso.example", external_id=ALICE)


@pytest.fixture
def group(db):
    return DirectoryGroup.objects.create(name="Payroll Admins", external_id=PAYROLL)


@pytest.fixture
def member_role(group):
    member, _owner = group_govern(actor=None, group=group)
    return member


def activate(user, role, *, now, ticket=""):
    eligible = EligibleAssignmentFactory(user=user, role=role)
    request = activation_request(
        requester=user,
        eligible=eligible,
        duration=timedelta(hours=1),
        justification="Payroll run",
        ticket_number=ticket,
        ticket_system="ServiceNow" if ticket else "",
        mfa_verified_at=now,
        now=now,
    )
    assert request.status == "granted"
    return request


def posts(stub, path="assignmentScheduleRequests"):
    return stub.requests_to("POST", BASE + path)


def test_an_activation_is_assigned_in_the_group_and_removed_at_expiry(graph, stub, alice, member_role):
    now = timezone.now()
    request = activate(alice, member_role, now=now, ticket="CHG-7")
    assignment = request.active_assignment

    assert directory_outbox_drain(now=now) == 1

    [assign] = posts(stub)
    assert assign.status == 201
    body = assign.body
    assert (body["action"], body["accessId"], body["principalId"], body["groupId"]) == (
        "adminAssign",
        "member",
        ALICE,
        PAYROLL,
    )
    assert "roleDefinitionId" not in body and "directoryScopeId" not in body
    assert parse_datetime(body["scheduleInfo"]["expiration"]["endDateTime"]) == assignment.ends_at
    assert "Payroll run" in body["justification"]
    assert body["ticketInfo"] == {"ticketNumber": "CHG-7", "ticketSystem": "ServiceNow"}
    assert [i["principalId"] for i in stub.group_pim.assignments] == [ALICE]
    grant = DirectoryOperation.objects.get(operation="grant")
    assert grant.status == "done" and grant.effect == "waiting"
    assert grant.result["target_schedule_id"].startswith(f"{PAYROLL}_member_")

    later = assignment.ends_at + timedelta(seconds=1)
    assert jobs.activation_expire_due(now=later) == 1
    assert directory_outbox_drain(now=later) == 1

    [_, remove] = posts(stub)
    assert (remove.body["action"], remove.body["accessId"], remove.body["groupId"]) == (
        "adminRemove",
        "member",
        PAYROLL,
    )
    assert "scheduleInfo" not in remove.body
    assert stub.group_pim.assignments == []
    assert AuditEvent.objects.filter(action="directory.revoke_confirmed").count() == 1


def test_an_activation_without_a_ticket_sends_no_ticket_info(graph, stub, alice, member_role):
    now = timezone.now()
    activate(alice, member_role, now=now)
    directory_outbox_drain(now=now)

    [assign] = posts(stub)
    assert "ticketInfo" not in assign.body


def test_the_effect_is_read_from_the_group_instances_with_the_required_filter(
    graph, stub, alice, member_role
):
    stub.apply_after_reads = 2
    now = timezone.now()
    activate(alice, member_role, now=now)
    directory_outbox_drain(now=now)
    op = DirectoryOperation.objects.get(operation="grant")

    assert directory_effect_check(operation_id=op.pk, now=op.completed_at + timedelta(seconds=5)) is False
    assert directory_effect_check(operation_id=op.pk, now=op.completed_at + timedelta(seconds=15)) is True

    reads = stub.requests_to("GET", "/v1.0/" + ASSIGNMENT_INSTANCES)
    assert [r.query["$filter"] for r in reads] == [
        f"groupId eq '{PAYROLL}' and principalId eq '{ALICE}' and accessId eq 'member'"
    ] * 2
    assert all(r.status == 200 for r in reads)
    assert AuditEvent.objects.filter(action="directory.grant_effective").count() == 1


def test_graph_refuses_instance_reads_without_a_group_or_principal_filter(graph, stub):
    from entra.client import GraphError

    with pytest.raises(GraphError) as refused:
        graph.get(ASSIGNMENT_INSTANCES)

    assert refused.value.status == 400
    assert "filter" in str(refused.value)


def test_an_assignment_already_there_counts_as_granted_and_one_gone_as_removed(
    graph, stub, alice, member_role
):
    stub.group_pim.add_assignment(ALICE, PAYROLL, "member")
    now = timezone.now()
    request = activate(alice, member_role, now=now)

    assert directory_outbox_drain(now=now) == 1
    grant = DirectoryOperation.objects.get(operation="grant")
    assert grant.status == "done"
    assert grant.result == {
        "action": "adminAssign",
        "status": "already assigned",
        "code": "RoleAssignmentExists",
    }

    stub.group_pim.assignments.clear()
    from activations.services import activation_deactivate

    activation_deactivate(requester=alice, request=request, now=now + timedelta(minutes=1))
    assert directory_outbox_drain(now=now + timedelta(minutes=1)) == 1
    revoke = DirectoryOperation.objects.get(operation="revoke")
    assert revoke.status == "done" and revoke.result["status"] == "already removed"


def test_a_throttled_request_is_retried_later_with_retry_after(graph, stub, alice, member_role):
    stub.fail(
        "POST",
        "identityGovernance/privilegedAccess/group/assignmentScheduleRequests",
        429,
        headers={"Retry-After": "120"},
    )
    now = timezone.now()
    activate(alice, member_role, now=now)

    assert directory_outbox_drain(now=now) == 0

    op = DirectoryOperation.objects.get(operation="grant")
    assert op.status == "pending" and op.next_attempt_at == now + timedelta(seconds=120)
    assert stub.group_pim.assignments == []
    assert directory_outbox_drain(now=now + timedelta(seconds=120)) == 1
    assert len(stub.group_pim.assignments) == 1


def test_a_policy_refusal_fails_the_operation_naming_the_rule(graph, stub, alice, member_role):
    stub.policy_failure = "ExpirationRule"
    now = timezone.now()
    activate(alice, member_role, now=now)

    directory_outbox_drain(now=now)

    op = DirectoryOperation.objects.get(operation="grant")
    assert op.status == "failed"
    assert "group policy refused the adminAssign (ExpirationRule)" in op.last_error


def test_a_portal_eligibility_is_written_back_to_the_group_and_removed(graph, stub, alice, member_role):
    now = timezone.now()
    eligible = eligible_assign(
        actor=None,
        role=member_role,
        principal=alice,
        scope="/",
        ends_at=now + timedelta(days=30),
        justification="On call",
        now=now,
    )
    directory_outbox_drain(now=now)

    [assign] = posts(stub, "eligibilityScheduleRequests")
    assert (assign.body["action"], assign.body["accessId"], assign.body["groupId"]) == (
        "adminAssign",
        "member",
        PAYROLL,
    )
    assert len(stub.group_pim.eligibilities) == 1

    eligible_remove(actor=None, assignment=eligible, reason="Rotation", now=now + timedelta(minutes=1))
    directory_outbox_drain(now=now + timedelta(minutes=1))

    assert [c.body["action"] for c in posts(stub, "eligibilityScheduleRequests")] == [
        "adminAssign",
        "adminRemove",
    ]
    assert stub.group_pim.eligibilities == []


def test_a_membership_entra_never_shows_is_not_confirmed_after_the_give_up_time(
    graph, stub, alice, member_role, settings
):
    settings.PIM_DIRECTORY_EFFECT_GIVE_UP_MINUTES = 60
    stub.apply_after_reads = None  # accepted, never applied
    now = timezone.now()
    activate(alice, member_role, now=now)
    directory_outbox_drain(now=now)
    op = DirectoryOperation.objects.get(operation="grant")

    assert directory_effect_check(operation_id=op.pk, now=op.completed_at + timedelta(seconds=5)) is False
    assert directory_effect_check(operation_id=op.pk, now=op.completed_at + timedelta(minutes=59)) is False
    assert directory_effect_check(operation_id=op.pk, now=op.completed_at + timedelta(minutes=60)) is False

    op.refresh_from_db()
    assert op.effect == "unconfirmed" and stub.group_pim.assignments == []
    assert AuditEvent.objects.get(action="directory.grant_unconfirmed").outcome == "failure"


def test_an_eligibility_extended_in_the_portal_is_extended_in_the_group(graph, stub, alice, member_role):
    from roles.services import eligible_extend

    now = timezone.now()
    eligible = eligible_assign(
        actor=None,
        role=member_role,
        principal=alice,
        scope="/",
        ends_at=now + timedelta(days=30),
        justification="On call",
        now=now,
    )
    directory_outbox_drain(now=now)
    later = now + timedelta(days=60)

    eligible_extend(actor=None, assignment=eligible, ends_at=later, justification="Another month", now=now)
    directory_outbox_drain(now=now)

    extend = posts(stub, "eligibilityScheduleRequests")[-1]
    assert (extend.body["action"], extend.body["accessId"], extend.body["groupId"]) == (
        "adminExtend",
        "member",
        PAYROLL,
    )
    assert parse_datetime(stub.group_pim.eligibilities[0]["endDateTime"]) == later


def test_a_scope_other_than_the_group_itself_is_refused(member_role, alice):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        eligible_assign(
            actor=None,
            role=member_role,
            principal=alice,
            scope="/administrativeUnits/00000000-0000-4000-8000-000000000000",
            ends_at=timezone.now() + timedelta(days=1),
            justification="x",
            now=timezone.now(),
        )
    assert not EligibleAssignment.objects.exists()


# --- Import ---------------------------------------------------------------------------------------


@pytest.fixture
def tenant(graph, stub, settings):
    """The stub tenant with a plain security group governed through ENTRA_PIM_GROUPS."""
    contoso(stub)
    stub.groups.append(
        {"id": PAYROLL, "displayName": "Payroll Admins", "isAssignableToRole": False, "_members": [BOB]}
    )
    settings.ENTRA_PIM_GROUPS = [PAYROLL]
    return stub


def test_the_sync_governs_the_configured_group_and_imports_its_eligibilities(tenant):
    ends = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    tenant.group_pim.add_eligibility(
        ALICE, PAYROLL, "member", endDateTime=ends.isoformat().replace("+00:00", "Z")
    )
    tenant.group_pim.add_eligibility(
        DAVE, PAYROLL, "owner", endDateTime=ends.isoformat().replace("+00:00", "Z")
    )

    run = entra_sync_run()

    assert run.status == "succeeded", run.errors
    group = DirectoryGroup.objects.get(external_id=PAYROLL)
    assert [u.external_id for u in group.members.all()] == [BOB]
    roles = {r.group_access: r for r in Role.objects.filter(governed_group=group)}
    assert {r.name for r in roles.values()} == {"Member of Payroll Admins", "Owner of Payroll Admins"}
    eligible = EligibleAssignment.objects.get(role=roles["member"])
    assert eligible.user.external_id == ALICE and eligible.ends_at == ends
    assert EligibleAssignment.objects.get(role=roles["owner"]).user.external_id == DAVE
    assert ImportedEligibility.objects.filter(directory_scope=PAYROLL).count() == 2
    assert not posts(tenant, "eligibilityScheduleRequests")  # nothing echoed back to Entra
    reads = [r for r in tenant.graph_calls() if r.path.startswith(BASE)]
    assert reads and all(r.query["$filter"] == f"groupId eq '{PAYROLL}'" for r in reads)
    assert run.counts["group_pim"] == {"governed": 1, "created": 2}

    # A second run changes nothing; one Entra no longer lists is ended in the portal.
    tenant.group_pim.eligibilities = [e for e in tenant.group_pim.eligibilities if e["accessId"] == "member"]
    second = entra_sync_run()
    assert second.counts["group_pim"] == {"unchanged": 1, "removed": 1}
    assert EligibleAssignment.objects.get(role=roles["owner"]).ended_at is not None
    # The directory-role import leaves the group's eligibilities alone.
    assert EligibleAssignment.objects.get(role=roles["member"]).ended_at is None


def test_an_assignment_made_outside_the_portal_is_drift_and_resolves_when_gone(tenant):
    entra_sync_run()
    member = Role.objects.get(governed_group__external_id=PAYROLL, group_access="member")
    alice = User.objects.get(external_id=ALICE)
    now = timezone.now()
    activate(alice, member, now=now)
    directory_outbox_drain(now=now)
    tenant.group_pim.add_assignment(BOB, PAYROLL, "owner")
    tenant.group_pim.add_assignment(DAVE, PAYROLL, "member", assignmentType="activated")

    run = entra_sync_run()

    [finding] = DriftFinding.objects.filter(resolved_at__isnull=True)
    assert (finding.principal_id, finding.role_template_id, finding.directory_scope) == (
        BOB,
        "owner",
        PAYROLL,
    )
    assert finding.role.name == "Owner of Payroll Admins" and finding.user.external_id == BOB
    assert run.counts["group_drift"] == {"portal": 1, "detected": 1, "activated": 1}
    assert AuditEvent.objects.filter(action="entra.drift_detected").count() == 1

    assert group_removals(tenant) == []  # reported only: ENTRA_REMOVE_DRIFT is off
    assert entra_sync_run().counts["group_drift"]["open"] == 1  # the directory roles' drift check keeps it
    tenant.group_pim.assignments = [a for a in tenant.group_pim.assignments if a["principalId"] != BOB]
    entra_sync_run()
    finding.refresh_from_db()
    assert finding.resolution == "gone"


def group_removals(stub):
    return [c for c in posts(stub) if c.body["action"] == "adminRemove"]


def test_with_removal_on_an_assignment_made_outside_the_portal_is_removed_from_the_group(tenant, settings):
    settings.ENTRA_REMOVE_DRIFT = True
    entra_sync_run()
    member = Role.objects.get(governed_group__external_id=PAYROLL, group_access="member")
    now = timezone.now()
    activate(User.objects.get(external_id=ALICE), member, now=now)
    directory_outbox_drain(now=now)
    tenant.group_pim.add_assignment(BOB, PAYROLL, "owner")
    tenant.group_pim.add_assignment(DAVE, PAYROLL, "member", assignmentType="activated")

    run = entra_sync_run()

    assert run.status == "succeeded", run.errors
    [removal] = group_removals(tenant)
    body = removal.body
    assert (body["accessId"], body["principalId"], body["groupId"]) == ("owner", BOB, PAYROLL)
    assert "assigned outside the portal" in body["justification"] and "scheduleInfo" not in body
    assert removal.status == 201
    remaining = sorted((a["principalId"], a["accessId"]) for a in tenant.group_pim.assignments)
    assert remaining == [(ALICE, "member"), (DAVE, "member")]  # the portal's own and Entra's JIT stay
    finding = DriftFinding.objects.get()
    assert finding.resolution == "removed" and finding.resolved_at is not None
    assert run.counts["group_drift"] == {"portal": 1, "detected": 1, "activated": 1, "removed": 1}
    event = AuditEvent.objects.get(action="entra.drift_removed")
    assert event.role_label == "Owner of Payroll Admins" and event.details["principal_id"] == BOB

    again = entra_sync_run()
    assert len(group_removals(tenant)) == 1
    assert again.counts["group_drift"] == {"portal": 1, "activated": 1}


def test_removal_spares_excluded_accounts_service_principals_and_lockout_protected_roles(tenant, settings):
    settings.ENTRA_REMOVE_DRIFT = True
    settings.ENTRA_DRIFT_EXCLUDE = [BOB.upper()]  # a break-glass account, whatever its case
    entra_sync_run()
    Role.objects.filter(governed_group__external_id=PAYROLL, group_access="owner").update(
        lockout_protected=True
    )
    tenant.group_pim.add_assignment(BOB, PAYROLL, "member")
    tenant.group_pim.add_assignment(SERVICE_PRINCIPAL, PAYROLL, "member")  # e.g. the portal's own app
    tenant.group_pim.add_assignment(DAVE, PAYROLL, "owner")

    run = entra_sync_run()

    assert group_removals(tenant) == []
    assert len(tenant.group_pim.assignments) == 3
    assert DriftFinding.objects.filter(resolved_at__isnull=True).count() == 3
    assert run.counts["group_drift"] == {"detected": 3, "kept": 3}
    other = DriftFinding.objects.get(principal_id=SERVICE_PRINCIPAL)
    assert other.principal_type == "other"
    assert not AuditEvent.objects.filter(action="entra.drift_removed").exists()


def test_a_refused_removal_is_the_runs_error_and_the_next_run_removes_it(tenant, settings):
    settings.ENTRA_REMOVE_DRIFT = True
    entra_sync_run()
    tenant.group_pim.add_assignment(BOB, PAYROLL, "owner")
    tenant.fail(
        "POST",
        "identityGovernance/privilegedAccess/group/assignmentScheduleRequests",
        403,
        code="Authorization_RequestDenied",
    )

    run = entra_sync_run()

    assert run.status == "partial"
    [error] = run.errors
    assert error["kind"] == "group_drift" and "Authorization_RequestDenied" in error["message"]
    assert "Owner of Payroll Admins" in error["item"]
    finding = DriftFinding.objects.get()
    assert finding.resolved_at is None and len(tenant.group_pim.assignments) == 1
    assert not AuditEvent.objects.filter(action="entra.drift_removed").exists()

    later = entra_sync_run()
    assert later.status == "succeeded", later.errors
    finding.refresh_from_db()
    assert finding.resolution == "removed" and tenant.group_pim.assignments == []
    assert later.counts["group_drift"] == {"open": 1, "removed": 1}


def test_an_ungovernable_group_id_is_the_runs_error_not_its_end(tenant, settings):
    settings.ENTRA_PIM_GROUPS = [PAYROLL, "99999999-0000-4000-8000-000000000000"]

    run = entra_sync_run()

    assert run.status == "partial"
    assert Role.objects.filter(governed_group__external_id=PAYROLL).count() == 2
    assert any("group_pim" == e["kind"] for e in run.errors)


def test_import_reads_nothing_for_no_governed_group(graph, stub):
    import_group_pim(graph, Tally(), timezone.now())

    assert [r for r in stub.graph_calls() if r.path.startswith(BASE)] == []
    assert not ActiveAssignment.objects.exists()
    assert TIER0  # the contoso tenant's own group is not governed unless configured


def test_the_groups_member_and_owner_policies_become_the_two_roles_settings(tenant):
    from entra.tests.conftest import entra_default_rules

    tenant.group_pim.policies[(PAYROLL, "member")] = entra_default_rules(
        Expiration_EndUser_Assignment={"maximumDuration": "PT2H"},
        Approval_EndUser_Assignment={
            "setting": {
                "isApprovalRequired": True,
                "approvalMode": "SingleStage",
                "approvalStages": [
                    {
                        "approvalStageTimeOutInDays": 1,
                        "primaryApprovers": [{"@odata.type": "#microsoft.graph.singleUser", "userId": BOB}],
                    }
                ],
            }
        },
    )

    run = entra_sync_run()

    assert run.status == "succeeded", run.errors
    member = Role.objects.get(governed_group__external_id=PAYROLL, group_access="member")
    owner = Role.objects.get(governed_group__external_id=PAYROLL, group_access="owner")
    assert member.settings.require_approval is True
    assert member.settings.activation_max_duration == timedelta(hours=2)
    assert [u.external_id for u in member.settings.approvers.all()] == [BOB]
    assert owner.settings.require_approval is False  # no policy read for it: left alone
    policy_reads = [
        r for r in tenant.graph_calls() if r.path == "/v1.0/policies/roleManagementPolicyAssignments"
    ]
    assert {r.query["$filter"] for r in policy_reads if "Group" in r.query["$filter"]} == {
        f"scopeId eq '{PAYROLL}' and scopeType eq 'Group' and roleDefinitionId eq '{access}'"
        for access in ("member", "owner")
    }
    assert entra_sync_run().counts["group_settings"] == {"unchanged": 1}


def test_a_refused_policy_read_is_the_groups_error_and_the_import_goes_on(tenant):
    ends = (timezone.now() + timedelta(days=30)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    tenant.group_pim.add_eligibility(ALICE, PAYROLL, "member", endDateTime=ends)
    assert entra_sync_run().status == "succeeded"
    # No RoleManagementPolicy.Read.*: the directory roles' read and both of the group's are refused.
    tenant.fail(
        "GET", "policies/roleManagementPolicyAssignments", 403, code="Authorization_RequestDenied", times=3
    )

    run = entra_sync_run()

    assert run.status == "partial"
    assert [e["kind"] for e in run.errors] == ["role_settings", "group_settings", "group_settings"]
    assert "Authorization_RequestDenied" in run.errors[1]["message"]
    assert run.counts["group_pim"] == {"unchanged": 1}  # the eligibilities were still mirrored


def test_a_group_renamed_in_entra_renames_its_roles_and_its_members_follow(tenant):
    entra_sync_run()
    tenant.groups[-1]["displayName"] = "Payroll Operators"
    tenant.groups[-1]["_members"] = [BOB, DAVE]

    run = entra_sync_run()

    assert run.status == "succeeded", run.errors
    group = DirectoryGroup.objects.get(external_id=PAYROLL)
    assert group.name == "Payroll Operators"
    assert sorted(u.external_id for u in group.members.all()) == [BOB, DAVE]
    assert sorted(Role.objects.filter(governed_group=group).values_list("name", flat=True)) == [
        "Member of Payroll Operators",
        "Owner of Payroll Operators",
    ]
    assert run.counts["group_pim_roles"] == {"renamed": 2}
    assert "group_pim_roles" not in entra_sync_run().counts


def test_a_malformed_group_id_in_the_setting_is_a_system_check_error(entra_settings):
    from entra.checks import entra_settings_check

    entra_settings.ENTRA_PIM_GROUPS = [PAYROLL, "Payroll Admins"]

    [problem] = [m for m in entra_settings_check() if m.id == "entra.E020"]
    assert "Payroll Admins" in problem.msg
    entra_settings.ENTRA_PIM_GROUPS = [PAYROLL]
    assert not [m for m in entra_settings_check() if m.id == "entra.E020"]


def test_an_eligibility_removed_in_the_portal_is_not_imported_again_while_its_removal_waits(tenant):
    ends = (timezone.now() + timedelta(days=30)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    tenant.group_pim.add_eligibility(ALICE, PAYROLL, "member", endDateTime=ends)
    entra_sync_run()
    eligible = EligibleAssignment.objects.get(role__governed_group__external_id=PAYROLL)
    tenant.fail("POST", "identityGovernance/privilegedAccess/group/eligibilityScheduleRequests", 503)

    eligible_remove(actor=None, assignment=eligible, reason="Left the team", now=timezone.now())
    assert DirectoryOperation.objects.get(eligible=eligible).status == "pending"  # Entra was busy
    run = entra_sync_run()

    assert run.counts["group_pim"] == {"skipped": 1}
    assert not EligibleAssignment.objects.filter(
        role__governed_group__external_id=PAYROLL, ended_at__isnull=True
    ).exists()


def test_a_governed_group_deleted_in_entra_is_its_error_and_the_others_go_on(tenant, settings):
    other = DirectoryGroup.objects.create(
        name="Gone Group", external_id="96000000-0000-4000-8000-000000000006"
    )
    group_govern(actor=None, group=other)
    tenant.group_pim.add_eligibility(
        ALICE, PAYROLL, "member", endDateTime=(timezone.now() + timedelta(days=3)).isoformat()
    )
    tenant.fail(
        "GET",
        "identityGovernance/privilegedAccess/group/eligibilityScheduleInstances",
        404,
        code="ResourceNotFound",
    )

    run = entra_sync_run()

    assert run.status == "partial"
    [error] = run.errors
    assert (error["kind"], error["item"]) == ("group_pim", "Gone Group") and "404" in error["message"]
    assert EligibleAssignment.objects.filter(role__governed_group__external_id=PAYROLL).count() == 1
