""" "Administrators aren't using their privileged roles" (unused_eligibilities): an eligible
holder is judged by their activations in the portal, a standing active holder by their
sign-ins anywhere (the portal's, or those Entra saw); each item names what decided."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from alerts.models import Alert
from alerts.rules import KINDS
from alerts.services import alerts_evaluate
from audit.models import AuditEvent
from roles.models import ActiveAssignment
from tests.factories import ActiveAssignmentFactory, EligibleAssignmentFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db
KIND = "unused_eligibilities"
DAYS = 30


@pytest.fixture(autouse=True)
def window(settings):
    settings.PIM_ALERT_UNUSED_DAYS = DAYS


def items(now=None) -> dict[str, dict]:
    findings = KINDS[KIND].rule(now=now or timezone.now())
    return {entry["id"]: entry for finding in findings for entry in finding.items}


def user_with(**sign_ins) -> User:
    user = UserFactory()
    User.objects.filter(pk=user.pk).update(**sign_ins)
    user.refresh_from_db()
    return user


def days_ago(days: int):
    return timezone.now() - timedelta(days=days)


def standing(user, role=None, *, since=40) -> ActiveAssignment:
    """A direct active assignment held for `since` days, ending in a year."""
    return ActiveAssignmentFactory(
        user=user, role=role or RoleFactory(), starts_at=days_ago(since), ends_at=days_ago(-365)
    )


def activated(eligible, *, ago: int):
    ActiveAssignmentFactory(
        user=eligible.user,
        role=eligible.role,
        eligible=eligible,
        origin="activation",
        starts_at=days_ago(ago),
        ends_at=days_ago(ago) + timedelta(hours=1),
    )


def test_an_eligible_holder_is_judged_by_activations_and_the_item_says_which():
    never = EligibleAssignmentFactory(starts_at=days_ago(60))
    long_ago = EligibleAssignmentFactory(starts_at=days_ago(90))
    activated(long_ago, ago=45)
    recent = EligibleAssignmentFactory(starts_at=days_ago(90))
    activated(recent, ago=5)
    # Signing in (anywhere) does not use an eligible role: only activating it does.
    signed_in = EligibleAssignmentFactory(
        user=user_with(last_sign_in_at=days_ago(1), directory_sign_in_at=days_ago(1)), starts_at=days_ago(60)
    )

    found = items()

    assert set(found) == {str(never.pk), str(long_ago.pk), str(signed_in.pk)}
    assert found[str(never.pk)]["source"] == "none" and found[str(never.pk)]["last_used_at"] is None
    assert found[str(never.pk)]["label"].endswith("— no activation ever seen")
    entry = found[str(long_ago.pk)]
    assert entry["source"] == "portal_activation"
    assert entry["last_used_at"].startswith(f"{days_ago(45):%Y-%m-%d}")
    assert f"last activation {days_ago(45):%Y-%m-%d} (activation in the portal)" in entry["label"]


def test_a_standing_active_holder_counts_as_using_the_role_when_signed_in_anywhere():
    standing(user_with(last_sign_in_at=days_ago(3)))  # the portal's
    standing(user_with(last_sign_in_at=days_ago(100), directory_sign_in_at=days_ago(2)))  # Entra's
    standing(user_with(directory_non_interactive_sign_in_at=days_ago(1)))  # Entra's, non-interactive

    assert items() == {}


def test_a_standing_active_holder_without_a_recent_sign_in_is_found_and_the_source_named():
    portal = standing(user_with(last_sign_in_at=days_ago(45)))
    entra = standing(user_with(last_sign_in_at=days_ago(80), directory_sign_in_at=days_ago(40)))
    non_interactive = standing(user_with(directory_non_interactive_sign_in_at=days_ago(35)))
    never = standing(user_with())
    young = standing(user_with(), since=10)
    activation = ActiveAssignmentFactory(
        user=user_with(), origin="activation", starts_at=days_ago(40), ends_at=days_ago(-1)
    )
    harmless = standing(user_with(), RoleFactory(privileged=False))

    found = items()

    assert set(found) == {str(a.pk) for a in (portal, entra, non_interactive, never)}
    assert not set(found) & {str(young.pk), str(activation.pk), str(harmless.pk)}
    assert {pk: entry["source"] for pk, entry in found.items()} == {
        str(portal.pk): "portal_sign_in",
        str(entra.pk): "entra_sign_in",
        str(non_interactive.pk): "entra_sign_in",
        str(never.pk): "none",
    }
    assert found[str(entra.pk)]["type"] == "active_assignment"
    assert f"last sign-in {days_ago(40):%Y-%m-%d} (sign-in seen by Entra ID)" in found[str(entra.pk)]["label"]
    assert found[str(never.pk)]["label"].endswith("— no sign-in ever seen")


def test_the_rule_reads_with_the_same_number_of_queries_whatever_the_number_of_holders():
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            items()
        return len(queries)

    EligibleAssignmentFactory(starts_at=days_ago(60))
    standing(user_with(directory_sign_in_at=days_ago(50)))
    few = count()
    for _ in range(5):
        activated(EligibleAssignmentFactory(starts_at=days_ago(60)), ago=40)
        standing(user_with(last_sign_in_at=days_ago(45)))
        standing(user_with())
    assert len(items()) == 17
    assert count() == few == 2


def test_the_fix_ends_an_unused_standing_active_assignment(verified_client, admin):
    unused = standing(user_with(last_sign_in_at=days_ago(45)))
    alerts_evaluate(kinds=[KIND])
    alert = Alert.objects.get(kind=KIND, status="open")
    client = verified_client(admin)

    response = client.post(f"/audit/alerts/{alert.pk}/fix/", {"item": str(unused.pk)}, follow=True)

    assert "no longer holds" in response.text
    unused.refresh_from_db()
    assert unused.ended_at is not None and unused.end_reason == "removed"
    assert AuditEvent.objects.filter(action="active_assignment.removed", target_id=str(unused.pk)).exists()
