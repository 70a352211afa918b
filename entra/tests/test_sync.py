"""The import (entra_sync) against the stub tenant."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import DirectoryGroup, User
from audit.models import AuditEvent
from entra import tasks
from entra.models import ImportedEligibility, SyncRun
from entra.services import SyncAlreadyRunning, entra_sync_run
from entra.tests.conftest import (
    ALICE,
    BOB,
    CAROL,
    CUSTOM_ROLE,
    DAVE,
    ERIN,
    GLOBAL_ADMIN,
    HELPDESK_ADMIN,
    TIER0,
    USER_ADMIN,
    contoso,
    graph_time,
)
from roles.models import EligibleAssignment, Role
from tests.factories import EligibleAssignmentFactory

pytestmark = pytest.mark.django_db


def entra_role(template_id) -> Role:
    return Role.objects.get(kind="entra", template_id=template_id)


def user(object_id) -> User:
    return User.objects.get(external_id=object_id)


def eligibilities_of(principal, **filters):
    field = "user" if isinstance(principal, User) else "group"
    return EligibleAssignment.objects.filter(**{field: principal}, **filters)


def actions(since=0) -> list[str]:
    return list(AuditEvent.objects.filter(seq__gt=since).order_by("seq").values_list("action", flat=True))


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_a_full_import_follows_every_page_and_mirrors_the_tenant(graph, stub):
    contoso(stub, page_size=2)

    run = entra_sync_run()

    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    # Paging: three pages of users, two of eligibilities, each through the nextLink.
    assert [c.query.get("$skiptoken") for c in stub.requests_to("GET", "/v1.0/users")] == [None, "2", "4"]
    eligibility_pages = stub.requests_to(
        "GET", "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances"
    )
    assert [c.query.get("$skiptoken") for c in eligibility_pages] == [None, "2"]
    assert stub.requests_to("GET", "/v1.0/users")[0].query["$select"] == (
        "id,displayName,userPrincipalName,mail,accountEnabled"
    )
    # Users, with managers; a disabled account arrives deactivated and cannot sign in.
    alice = user(ALICE)
    assert (alice.username, alice.display_name, alice.email) == (
        "alice@contoso.example",
        "Alice Example",
        "alice@contoso.example",
    )
    assert not alice.has_usable_password()
    assert alice.manager == user(BOB) and user(ERIN).manager == alice and user(BOB).manager is None
    assert not user(CAROL).is_active
    # The role-assignable group and its members; other groups stay out.
    tier0 = DirectoryGroup.objects.get(external_id=TIER0)
    assert set(tier0.members.values_list("external_id", flat=True)) == {ALICE, DAVE}
    assert not DirectoryGroup.objects.filter(name="Everyone").exists()
    # Built-in roles matched by template id; the custom one added as an Entra role.
    custom = entra_role(CUSTOM_ROLE)
    assert (custom.name, custom.builtin, custom.description) == (
        "Contoso Payroll Reader",
        False,
        "Reads payroll data",
    )
    assert Role.objects.filter(template_id=USER_ADMIN).count() == 1
    # Role settings from the 17 rules.
    settings = entra_role(USER_ADMIN).settings
    assert settings.activation_max_duration == timedelta(hours=4)
    assert settings.require_mfa and settings.require_justification and settings.require_ticket
    assert settings.require_approval and list(settings.approvers.all()) == [user(BOB)]
    assert settings.approval_timeout == timedelta(days=2)
    assert not settings.eligible_allow_permanent and settings.eligible_max_duration == timedelta(days=180)
    assert settings.notify_active_admin_additional == "soc@contoso.example"
    assert settings.notify_activation_admin_additional == ""
    assert entra_role(GLOBAL_ADMIN).settings.activation_max_duration == timedelta(hours=1)
    assert entra_role(HELPDESK_ADMIN).settings.eligible_allow_permanent  # Entra's default
    # Eligibilities, for users and the group, linked to their Entra counterparts.
    ends = graph_time(timezone.now() + timedelta(days=90))[:10]
    assert eligibilities_of(alice, role=entra_role(USER_ADMIN)).get().ends_at.isoformat()[:10] == ends
    assert eligibilities_of(user(BOB), role=entra_role(HELPDESK_ADMIN)).get().ends_at is None
    assert eligibilities_of(tier0, role=entra_role(USER_ADMIN)).exists()
    assert eligibilities_of(user(DAVE), role=custom).exists()
    assert ImportedEligibility.objects.count() == 4
    # Counted per kind, recorded on the run; every change audited as the system's.
    assert run.counts["users"] == {"created": 5}
    assert run.counts["eligibilities"] == {"created": 4}
    assert run.counts["roles"] == {"created": 1, "unchanged": 3}
    assert run.counts["role_settings"] == {"updated": 3}
    assert run.counts["members"] == {"added": 2}
    assert run.counts["managers"] == {"updated": 3, "unchanged": 2}
    events = AuditEvent.objects.filter(action="eligible_assignment.created")
    assert events.count() == 4 and set(events.values_list("actor_label", flat=True)) == {"system"}
    assert AuditEvent.objects.filter(action="user.created").count() == 5


def test_a_second_run_changes_nothing_and_writes_no_event(graph, stub):
    contoso(stub)
    entra_sync_run()
    seq = last_seq()
    eligibility_ids = set(EligibleAssignment.objects.values_list("pk", flat=True))

    run = entra_sync_run()

    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    assert actions(seq) == []
    assert set(EligibleAssignment.objects.values_list("pk", flat=True)) == eligibility_ids
    for kind, counts in run.counts.items():
        assert set(counts) <= {"unchanged", "portal", "skipped"}, (kind, counts)
    assert stub.token_requests == 1


def test_an_account_disabled_in_entra_is_deactivated_by_the_system(graph, stub):
    contoso(stub)
    entra_sync_run()
    stub.users[0]["accountEnabled"] = False  # Alice

    run = entra_sync_run()

    assert not user(ALICE).is_active
    assert run.counts["users"]["deactivated"] == 1
    event = AuditEvent.objects.get(action="user.deactivated")
    assert event.actor_label == "system" and "disabled in Microsoft Entra ID" in event.details["reason"]


def test_an_anti_lockout_refusal_is_recorded_and_the_run_goes_on(graph, stub):
    contoso(stub)
    entra_sync_run()
    alice = user(ALICE)
    EligibleAssignmentFactory(user=alice, role=entra_role(GLOBAL_ADMIN), ends_at=None)
    stub.users[0]["accountEnabled"] = False

    run = entra_sync_run()

    assert run.status == SyncRun.Status.PARTIAL
    assert user(ALICE).is_active  # the last Global Administrator is not locked out
    [error] = [e for e in run.errors if e["kind"] == "users"]
    assert error["item"] == "alice@contoso.example" and "anti-lockout" in error["message"]
    assert run.counts["users"]["errors"] == 1
    assert run.counts["eligibilities"] == {"unchanged": 4}  # later steps still ran


def test_a_user_gone_from_entra_is_deactivated(graph, stub):
    contoso(stub)
    entra_sync_run()
    stub.users = [u for u in stub.users if u["id"] != ERIN]

    entra_sync_run()

    assert not user(ERIN).is_active
    assert AuditEvent.objects.get(action="user.deactivated").target_label.startswith("Erin Example")


def test_a_renamed_user_keeps_their_account(graph, stub):
    contoso(stub)
    entra_sync_run()
    pk = user(DAVE).pk
    stub.users[3].update(userPrincipalName="david@contoso.example", displayName="David Example")

    run = entra_sync_run()

    dave = user(DAVE)
    assert (dave.pk, dave.username, dave.display_name) == (pk, "david@contoso.example", "David Example")
    assert run.counts["users"]["updated"] == 1


def test_a_local_account_with_the_same_sign_in_name_is_a_conflict_not_merged(graph, stub):
    contoso(stub)
    local = User.objects.create(username="bob@contoso.example", display_name="Bob (local)")

    run = entra_sync_run()

    local.refresh_from_db()
    assert local.external_id == "" and local.display_name == "Bob (local)"
    assert User.objects.filter(username__iexact="bob@contoso.example").count() == 1
    assert not User.objects.filter(external_id=BOB).exists()
    assert any("Conflict" in str(error) and "not merged" in str(error) for error in run.errors), run.errors
    assert not AuditEvent.objects.filter(action="entra.user_linked").exists()


def test_users_are_keyed_on_the_object_id_not_the_upn(graph, stub):
    contoso(stub)
    entra_sync_run()
    bob = user(BOB)
    for item in stub.users:
        if item["id"] == BOB:
            item["userPrincipalName"] = "robert@contoso.example"

    entra_sync_run()

    bob_after = user(BOB)
    assert bob_after.pk == bob.pk and bob_after.username == "robert@contoso.example"


def test_an_eligibility_removed_in_entra_ends_but_the_portals_own_stay(graph, stub, admin):
    contoso(stub)
    entra_sync_run()
    portal_made = EligibleAssignmentFactory(user=user(ERIN), role=entra_role(USER_ADMIN))
    stub.eligibilities = [e for e in stub.eligibilities if e["principalId"] != ALICE]

    run = entra_sync_run()

    gone = eligibilities_of(user(ALICE), role=entra_role(USER_ADMIN)).get()
    assert gone.ended_at is not None and gone.end_reason == "removed"
    portal_made.refresh_from_db()
    assert portal_made.ended_at is None
    assert run.counts["eligibilities"] == {"removed": 1, "unchanged": 3}
    assert ImportedEligibility.objects.count() == 3
    assert AuditEvent.objects.get(action="eligible_assignment.removed").actor_label == "system"


def test_a_changed_end_in_entra_moves_the_portals_end(graph, stub):
    contoso(stub)
    entra_sync_run()
    later = timezone.now() + timedelta(days=120)
    stub.eligibilities[0]["endDateTime"] = graph_time(later)

    run = entra_sync_run()

    eligible = eligibilities_of(user(ALICE), role=entra_role(USER_ADMIN)).get()
    assert eligible.ends_at == later.replace(microsecond=0)
    assert run.counts["eligibilities"] == {"updated": 1, "unchanged": 3}
    assert actions(0).count("eligible_assignment.updated") == 1


def test_a_matching_portal_eligibility_is_adopted_not_duplicated(graph, stub):
    contoso(stub)
    entra_sync_run()
    alice_link = ImportedEligibility.objects.get(principal_id=ALICE)
    alice_link.eligible.ended_at = timezone.now() - timedelta(seconds=1)
    alice_link.eligible.save()
    portal_made = EligibleAssignmentFactory(
        user=user(ALICE), role=entra_role(USER_ADMIN), ends_at=timezone.now() + timedelta(days=10)
    )

    run = entra_sync_run()

    assert (
        eligibilities_of(user(ALICE), role=entra_role(USER_ADMIN), ended_at__isnull=True).get() == portal_made
    )
    assert ImportedEligibility.objects.get(principal_id=ALICE).eligible == portal_made
    assert run.counts["eligibilities"]["updated"] == 1
    assert AuditEvent.objects.filter(action="entra.eligibility_linked").count() == 1


def test_a_forbidden_read_ends_only_its_step(graph, stub):
    contoso(stub)
    stub.fail("GET", "groups", 403, code="Authorization_RequestDenied")

    run = entra_sync_run()

    assert run.status == SyncRun.Status.PARTIAL
    assert any("Authorization_RequestDenied" in e["message"] for e in run.errors if e["kind"] == "groups")
    assert run.counts["eligibilities"] == {"created": 3, "errors": 1}  # not the group's
    assert User.objects.filter(external_id__in=[ALICE, BOB]).count() == 2


def test_graph_down_fails_the_run_and_says_why(graph, stub):
    contoso(stub)
    stub.stop()

    run = entra_sync_run()

    assert run.status == SyncRun.Status.FAILED and run.finished_at is not None
    assert "unreachable" in run.errors[0]["message"]
    assert User.objects.filter(external_id=ALICE).count() == 0


def test_only_one_run_at_a_time_and_an_abandoned_run_is_closed(graph, stub):
    contoso(stub)
    now = timezone.now()
    running = SyncRun.objects.create(started_at=now - timedelta(minutes=5))
    with pytest.raises(SyncAlreadyRunning):
        entra_sync_run(now=now)
    SyncRun.objects.filter(pk=running.pk).update(started_at=now - timedelta(hours=3))

    run = entra_sync_run(now=now)

    running.refresh_from_db()
    assert running.status == SyncRun.Status.FAILED and "Abandoned" in running.errors[0]["message"]
    assert run.status == SyncRun.Status.SUCCEEDED


def test_the_command_prints_the_counts(graph, stub, capsys):
    contoso(stub)
    call_command("entra_sync")
    out = capsys.readouterr().out
    assert "users: created 5" in out and "Entra sync succeeded." in out
    assert SyncRun.objects.get().trigger == SyncRun.Trigger.COMMAND


def test_the_command_refuses_when_the_sync_is_off(settings):
    settings.ENTRA_SYNC_ENABLED = False
    with pytest.raises(CommandError, match="ENTRA_SYNC_ENABLED"):
        call_command("entra_sync")


def test_the_periodic_task_runs_a_sync_only_when_enabled(graph, stub, settings):
    contoso(stub)
    tasks.entra_sync.delay()
    assert SyncRun.objects.get().status == SyncRun.Status.SUCCEEDED
    settings.ENTRA_SYNC_ENABLED = False
    tasks.entra_sync.delay()
    assert SyncRun.objects.count() == 1
