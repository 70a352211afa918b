"""Sign-in activity imported from Entra (Graph signInActivity) and used beside the portal's own
sign-ins by the stale-account alert and access-review recommendations."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User, latest_sign_in
from alerts.rules import stale_accounts
from audit.models import AuditEvent
from entra.models import SyncRun
from entra.services import entra_sync_run
from entra.tests.conftest import ALICE, BOB, DAVE, ERIN, contoso, graph_time
from reviews.tests.helpers import definition_create, start
from tests.factories import ActiveAssignmentFactory, EligibleAssignmentFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


@pytest.fixture
def sign_ins_on(settings):
    settings.ENTRA_SIGN_IN_ACTIVITY = True
    return settings


def activity(stub, object_id, interactive=None, non_interactive=None):
    user = next(u for u in stub.users if u["id"] == object_id)
    user["signInActivity"] = {
        "lastSignInDateTime": graph_time(interactive) if interactive else None,
        "lastSignInRequestId": "not used",
        "lastNonInteractiveSignInDateTime": graph_time(non_interactive) if non_interactive else None,
        "lastNonInteractiveSignInRequestId": "not used",
    }


def sign_in_reads(stub):
    return [
        r for r in stub.requests_to("GET", "/v1.0/users") if "signInActivity" in r.query.get("$select", "")
    ]


def test_the_sync_imports_each_linked_users_last_sign_ins_page_by_page(graph, stub, sign_ins_on):
    now = timezone.now().replace(microsecond=0)
    contoso(stub, page_size=2)
    activity(stub, ALICE, interactive=now - 2 * DAY, non_interactive=now - DAY)
    activity(stub, BOB, interactive=now - 40 * DAY)
    # A user the portal refuses (name too long) is not linked, so its activity is skipped.
    stub.users.append({"id": "f0000000-0000-4000-8000-00000000000f", "userPrincipalName": "x" * 151})
    stub.users[-1]["signInActivity"] = {"lastSignInDateTime": graph_time(now)}

    run = entra_sync_run()

    alice, bob, dave = (User.objects.get(external_id=i) for i in (ALICE, BOB, DAVE))
    assert (alice.directory_sign_in_at, alice.directory_non_interactive_sign_in_at) == (
        now - 2 * DAY,
        now - DAY,
    )
    assert alice.last_seen == (now - DAY, "directory_non_interactive")
    assert alice.last_seen_label == f"{now - DAY:%Y-%m-%d} (Entra ID, non-interactive)"
    assert (bob.directory_sign_in_at, bob.directory_non_interactive_sign_in_at) == (now - 40 * DAY, None)
    assert dave.directory_sign_in_at is None and dave.last_seen == (None, "")
    reads = sign_in_reads(stub)
    assert reads[0].query["$select"] == "id,signInActivity" and reads[0].query["$top"] == "500"
    assert len(reads) == 3  # six users, two a page: every page followed
    assert run.counts["sign_in_activity"] == {"updated": 2, "unchanged": 3}
    assert not AuditEvent.objects.filter(action__contains="sign_in").exists()  # observations only

    again = entra_sync_run()

    assert again.counts["sign_in_activity"] == {"updated": 0, "unchanged": 5}


def test_off_by_default_nothing_is_read(graph, stub):
    contoso(stub)
    activity(stub, ALICE, interactive=timezone.now())

    run = entra_sync_run()

    assert sign_in_reads(stub) == []
    assert "sign_in_activity" not in run.counts
    assert User.objects.get(external_id=ALICE).directory_sign_in_at is None


def test_without_the_permission_the_step_fails_alone_and_the_run_goes_on(graph, stub, sign_ins_on):
    contoso(stub)
    activity(stub, ALICE, interactive=timezone.now())
    stub.deny_sign_in_activity = True  # no AuditLog.Read.All, or no Entra ID P1

    run = entra_sync_run()

    [error] = [e for e in run.errors if e["kind"] == "sign_in_activity"]
    assert "Authorization_RequestDenied" in error["message"] or "privileges" in error["message"]
    assert run.status == SyncRun.Status.PARTIAL
    assert run.counts["eligibilities"]  # later steps still ran
    assert User.objects.get(external_id=ALICE).directory_sign_in_at is None


def test_unreadable_or_never_sign_in_times_are_none_not_guesses(graph, stub, sign_ins_on):
    contoso(stub)
    next(u for u in stub.users if u["id"] == ALICE)["signInActivity"] = {
        "lastSignInDateTime": "0001-01-01T00:00:00Z",
        "lastNonInteractiveSignInDateTime": "2026-02-30T25:00:00Z",
    }
    next(u for u in stub.users if u["id"] == ERIN)["signInActivity"] = {
        "lastSignInDateTime": "2026-01-02T03:04:05"
    }

    entra_sync_run()

    for object_id in (ALICE, ERIN):
        user = User.objects.get(external_id=object_id)
        assert (user.directory_sign_in_at, user.directory_non_interactive_sign_in_at) == (None, None)


def test_latest_sign_in_prefers_the_latest_and_the_portal_on_a_tie():
    now = timezone.now()
    assert latest_sign_in(None, None, None) == (None, "")
    assert latest_sign_in(now - DAY, now, None) == (now, "directory")
    assert latest_sign_in(now, now, now) == (now, "portal")
    assert latest_sign_in(None, now - DAY, now) == (now, "directory_non_interactive")


# --- Where it is used --------------------------------------------------------------------


def test_the_stale_account_alert_counts_entra_sign_ins_and_says_which_source():
    now = timezone.now()
    global_admin = RoleFactory(privileged=True)
    old = now - 90 * DAY
    works_in_m365 = UserFactory(
        username="m365", date_joined=old, last_sign_in_at=old, directory_sign_in_at=now - DAY
    )
    quiet = UserFactory(
        username="quiet",
        date_joined=old,
        last_sign_in_at=now - 45 * DAY,
        directory_non_interactive_sign_in_at=now - 40 * DAY,
    )
    portal_only = UserFactory(username="portal", date_joined=old, last_sign_in_at=now - 2 * DAY)
    for user in (works_in_m365, quiet, portal_only):
        EligibleAssignmentFactory(user=user, role=global_admin, ends_at=None)

    [finding] = stale_accounts(now=now)

    assert [item["id"] for item in finding.items] == [str(quiet.pk)]
    assert finding.items[0]["label"].endswith(
        f"last sign-in {now - 40 * DAY:%Y-%m-%d} (Entra ID, non-interactive)"
    )


def test_review_recommendations_use_the_latest_sign_in_from_either_source(reviewer):
    now = timezone.now()
    role = RoleFactory(name="Payroll Administrator")
    seen_in_entra = UserFactory(
        username="entra", manager=reviewer, last_sign_in_at=now - 60 * DAY, directory_sign_in_at=now - 3 * DAY
    )
    gone = UserFactory(username="gone", manager=reviewer, directory_sign_in_at=now - 60 * DAY)
    for user in (seen_in_entra, gone):
        ActiveAssignmentFactory(user=user, role=role, origin="direct", ends_at=now + 60 * DAY)
    definition = definition_create(roles=[role], review_eligible=False, review_active=True)

    items = {item.user.username: item for item in start(definition).items.select_related("user")}

    assert items["entra"].recommendation == "approve"
    assert (items["entra"].last_sign_in_at, items["entra"].last_sign_in_source) == (
        now - 3 * DAY,
        "directory",
    )
    assert items["entra"].recommendation_reason == f"Signed in on {now - 3 * DAY:%Y-%m-%d} (Entra ID)."
    assert items["gone"].recommendation == "deny"
    assert "(Entra ID)" in items["gone"].recommendation_reason
