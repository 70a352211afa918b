"""Anti-lockout whatever the end date (SPEC 2.2, README "Anti-lockout"): the last holder of a
lockout-protected role cannot be given an end no other holder outlasts, and it does not lapse
at its end (the expiry job keeps it and the high alert says so)."""

from datetime import UTC, datetime, timedelta

import pytest

from alerts.rules import KINDS
from audit.models import AuditEvent
from roles import services
from roles.jobs import assignment_expire_due
from roles.models import EligibleAssignment, Role
from roles.selectors import pim_administrators, portal_role, role_holders
from tests.factories import (
    ActiveAssignmentFactory,
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def global_admin():
    return Role.objects.get(template_id="62e90394-69f5-4237-9190-012177145e10")


def holder(role, ends_at, **fields):
    return EligibleAssignmentFactory(role=role, starts_at=T0 - DAY, ends_at=ends_at, **fields)


def fresh(assignment):
    assignment.refresh_from_db()
    return assignment


def kept_events(assignment=None):
    events = AuditEvent.objects.filter(action__endswith="_assignment.kept")
    return list(events.filter(target_id=str(assignment.pk)) if assignment else events)


# --- Edits: the last holder's end cannot be set or brought forward -----------------------------


def test_an_end_no_other_holder_outlasts_is_refused(admin, global_admin):
    longer = holder(global_admin, T0 + 30 * DAY)
    holder(global_admin, T0 + 10 * DAY)

    with pytest.raises(services.LockoutError, match="would have no holder after 2026-03-22"):
        services.eligible_update(actor=admin, assignment=longer, ends_at=T0 + 20 * DAY)
    assert fresh(longer).ends_at == T0 + 30 * DAY


def test_an_end_another_holder_outlasts_is_allowed(admin, global_admin):
    shorter = holder(global_admin, T0 + 30 * DAY)
    holder(global_admin, T0 + 40 * DAY)

    services.eligible_update(actor=admin, assignment=shorter, ends_at=T0 + 20 * DAY)

    assert fresh(shorter).ends_at == T0 + 20 * DAY


def test_the_only_time_bound_holder_cannot_be_shortened(admin, global_admin):
    only = holder(global_admin, T0 + 30 * DAY)

    with pytest.raises(services.LockoutError):
        services.eligible_update(actor=admin, assignment=only, ends_at=T0 + 5 * DAY)


def test_a_permanent_holder_gets_an_end_only_if_someone_holds_the_role_after_it(admin, global_admin):
    permanent = holder(global_admin, None)
    holder(global_admin, None)

    services.eligible_update(actor=admin, assignment=permanent, ends_at=T0 + 5 * DAY)

    assert fresh(permanent).ends_at == T0 + 5 * DAY


def test_a_role_that_is_not_protected_has_no_such_rule(admin):
    role = RoleFactory()
    longer = holder(role, T0 + 30 * DAY)
    holder(role, T0 + 10 * DAY)

    services.eligible_update(actor=admin, assignment=longer, ends_at=T0 + 20 * DAY)

    assert fresh(longer).ends_at == T0 + 20 * DAY


# --- The end: the last holder is kept ----------------------------------------------------------


def test_the_last_time_bound_global_administrator_does_not_lapse(global_admin):
    last = holder(global_admin, T0 + timedelta(minutes=30))

    assignment_expire_due(now=T0)

    assert fresh(last).ends_at is None and last.end_reason == ""
    [event] = kept_events(last)
    assert (event.action, event.actor_id, event.outcome) == ("eligible_assignment.kept", None, "success")
    assert event.details["before"] == {"ends_at": "2026-03-02T10:30:00Z"}
    assert "anti-lockout" in event.details["because"] and event.details["lapsed"] is False
    eligible, _ = role_holders(role=global_admin, at=T0 + 30 * DAY)
    assert list(eligible) == [last]


def test_the_last_pim_administrator_does_not_lapse_and_still_approves_and_administers():
    role = portal_role("pim.administrator")
    person = UserFactory(username="lastadmin")
    last = holder(role, T0 + timedelta(minutes=20), user=person)

    assignment_expire_due(now=T0)

    assert fresh(last).ends_at is None
    assert list(pim_administrators(at=T0 + 2 * DAY)) == [person]


def test_a_late_job_keeps_a_last_holder_that_lapsed_before_it_ran(global_admin):
    last = holder(global_admin, T0 - timedelta(minutes=3))

    assignment_expire_due(now=T0)

    assert fresh(last).ends_at is None and last.end_reason == ""
    assert kept_events(last)[0].details["lapsed"] is True
    assert not AuditEvent.objects.filter(action="eligible_assignment.expired").exists()


def test_a_holder_that_another_outlasts_expires_as_usual(global_admin):
    ending = holder(global_admin, T0 - timedelta(minutes=3))
    holder(global_admin, T0 + 10 * DAY)

    assignment_expire_due(now=T0)

    assert fresh(ending).end_reason == "expired" and kept_events() == []


def test_the_latest_ending_holder_is_the_one_kept(global_admin):
    first = holder(global_admin, T0 + timedelta(minutes=10))
    last = holder(global_admin, T0 + timedelta(minutes=40))

    assignment_expire_due(now=T0)

    assert fresh(last).ends_at is None and fresh(first).ends_at == T0 + timedelta(minutes=10)
    assert [e.target_id for e in kept_events()] == [str(last.pk)]


def test_nothing_is_kept_while_the_role_is_held_beyond_the_next_hour(global_admin):
    soon = holder(global_admin, T0 + timedelta(minutes=30))
    holder(global_admin, T0 + 2 * timedelta(hours=1))

    assignment_expire_due(now=T0)

    assert fresh(soon).ends_at == T0 + timedelta(minutes=30) and kept_events() == []


def test_a_direct_active_last_holder_is_kept_too(global_admin):
    last = ActiveAssignmentFactory(role=global_admin, starts_at=T0 - DAY, ends_at=T0 + timedelta(minutes=5))

    assignment_expire_due(now=T0)

    assert fresh(last).ends_at is None
    assert kept_events(last)[0].action == "active_assignment.kept"


def test_a_deactivated_persons_eligibility_is_not_kept(global_admin):
    last = holder(global_admin, T0 + timedelta(minutes=5), user=UserFactory(is_active=False))

    assignment_expire_due(now=T0 + timedelta(minutes=10))

    assert fresh(last).end_reason == "expired" and kept_events() == []


def test_a_groups_eligibility_is_kept_while_the_group_has_an_active_member(global_admin):
    group = DirectoryGroupFactory()
    group.members.add(UserFactory())
    last = holder(global_admin, T0 + timedelta(minutes=5), user=None, group=group)

    assignment_expire_due(now=T0)

    assert fresh(last).ends_at is None


def test_roles_that_are_not_protected_lapse(global_admin):
    ordinary = holder(RoleFactory(), T0 - timedelta(minutes=1))

    assignment_expire_due(now=T0)

    assert fresh(ordinary).end_reason == "expired" and kept_events() == []


def test_keeping_twice_keeps_once(global_admin):
    holder(global_admin, T0 + timedelta(minutes=5))

    assert services.lockout_holders_keep(now=T0) == 1
    assert services.lockout_holders_keep(now=T0) == 0
    assert len(kept_events()) == 1


# --- The alert --------------------------------------------------------------------------------


def test_a_kept_holder_raises_a_high_alert_until_it_has_an_end_again(admin, global_admin):
    last = holder(global_admin, T0 + timedelta(minutes=5))
    assignment_expire_due(now=T0)
    kind = KINDS["lockout_holder_kept"]

    [finding] = kind.rule(now=T0)
    assert kind.severity == "high"
    assert [entry["id"] for entry in finding.items] == [str(last.pk)]

    holder(global_admin, None)  # someone else first, then the kept one can end again
    services.eligible_update(actor=admin, assignment=last, ends_at=T0 + 10 * DAY)
    assert kind.rule(now=T0) == []
    assert EligibleAssignment.objects.get(pk=last.pk).ends_at == T0 + 10 * DAY
