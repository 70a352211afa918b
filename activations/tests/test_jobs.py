"""The periodic jobs (SPEC 3): each finds its work in the database, claims what it does, is
harmless to run twice or late, and none of them is needed for access to end on time."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command

from activations import jobs
from activations.models import ActivationRequest
from audit.models import AuditEvent
from notifications.models import Email
from roles.models import ActiveAssignment, DirectoryOperation
from roles.selectors import user_holds_role
from tests.factories import ActiveAssignmentFactory, UserFactory

from .helpers import (
    HOUR,
    T0,
    approve,
    eligible_for,
    reloaded,
    request_actions,
    request_activation,
    request_events,
    role_with,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0  # the shared `clock` fixture (root conftest) stops time here

Status = ActivationRequest.Status
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


def activations(count, *, duration=HOUR, now=T0):
    """`count` granted activations (each of its own role), all asked at `now`."""
    requester = UserFactory()
    return [
        request_activation(
            requester, eligible_for(requester, role_with(), starts_at=now), duration=duration, now=now
        )
        for _ in range(count)
    ]


def pending_requests(count, approver, *, now=T0):
    requester = UserFactory()
    return [
        request_activation(
            requester, eligible_for(requester, role_with(approvers=[approver]), starts_at=now), now=now
        )
        for _ in range(count)
    ]


def revokes():
    return DirectoryOperation.objects.filter(operation=DirectoryOperation.Operation.REVOKE)


# --- Expiry ------------------------------------------------------------------------------------


def test_expiry_closes_exactly_the_activations_that_have_ended():
    early, on_time, later = (
        activations(1, duration=duration)[0] for duration in (30 * MINUTE, HOUR, 90 * MINUTE)
    )

    assert jobs.activation_expire_due(now=T0 + HOUR) == 2

    assert [reloaded(r).status for r in (early, on_time, later)] == [
        Status.EXPIRED,
        Status.EXPIRED,
        Status.GRANTED,
    ]
    for request in (early, on_time):
        request = reloaded(request)
        assert request.closed_at == T0 + HOUR
        assert request.active_assignment.end_reason == ActiveAssignment.EndReason.EXPIRED
        [event] = request_events(request, "activation.expired")
        assert event.actor is None and event.actor_label == "system"
        assert request_actions(request) == ["activation.granted", "activation.expired"]
    assert sorted(op.assignment_id for op in revokes()) == sorted(
        r.active_assignment_id for r in (early, on_time)
    )
    assert request_actions(later) == ["activation.granted"]


def test_expiry_run_twice_does_nothing_twice():
    activations(3)

    assert jobs.activation_expire_due(now=T0 + HOUR) == 3
    events, operations = AuditEvent.objects.count(), revokes().count()
    assert jobs.activation_expire_due(now=T0 + HOUR) == 0
    assert jobs.activation_expire_due(now=T0 + 2 * HOUR) == 0

    assert (AuditEvent.objects.count(), revokes().count()) == (events, operations) == (6, 3)


def test_access_ends_at_the_exact_second_whether_or_not_the_job_ran():
    [request] = activations(1)
    requester, role = request.requester, request.role

    assert user_holds_role(user=requester, role=role, at=T0 + HOUR - timedelta(microseconds=1))
    assert not user_holds_role(user=requester, role=role, at=T0 + HOUR)  # job not run
    assert reloaded(request).status == Status.GRANTED

    jobs.activation_expire_due(now=T0 + 2 * HOUR)  # late
    assert not user_holds_role(user=requester, role=role, at=T0 + HOUR)
    assert user_holds_role(user=requester, role=role, at=T0 + HOUR - SECOND)  # history is unchanged


def test_expiry_catches_up_after_downtime_in_one_run_across_batches():
    due = activations(7, now=T0 - 10 * HOUR)  # ended nine hours ago, nobody ran the job

    assert jobs.activation_expire_due(now=T0, batch=3) == 7

    assert {reloaded(r).status for r in due} == {Status.EXPIRED}
    assert AuditEvent.objects.filter(action="activation.expired").count() == 7
    assert revokes().count() == 7
    assert jobs.activation_expire_due(now=T0, batch=3) == 0


def test_expiry_in_exact_batches_stops_when_nothing_is_left():
    activations(6, now=T0 - 10 * HOUR)
    assert jobs.activation_expire_due(now=T0, batch=3) == 6


def test_the_expiry_revoke_is_carried_out_after_commit(clock, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        activations(1)  # and its directory grant
    clock.move_to(T0 + HOUR, tick=False)

    with django_capture_on_commit_callbacks(execute=True):
        jobs.activation_expire_due()

    [operation] = revokes()
    assert operation.status == DirectoryOperation.Status.DONE
    assert AuditEvent.objects.filter(action="directory.revoke_confirmed").count() == 1


def test_a_new_activation_is_possible_right_after_the_last_one_lapsed(clock):
    [old] = activations(1)
    clock.move_to(T0 + HOUR, tick=False)  # the expiry job has not run

    new = request_activation(old.requester, old.eligible)

    assert new.status == Status.GRANTED
    old = reloaded(old)
    assert old.status == Status.EXPIRED and old.closed_at == T0 + HOUR
    assert old.active_assignment.end_reason == ActiveAssignment.EndReason.EXPIRED
    assert request_actions(old) == ["activation.granted", "activation.expired"]
    # The lapsed one is revoked in the directory as the job would have done it.
    assert list(revokes().values_list("assignment", flat=True)) == [old.active_assignment_id]
    assert jobs.activation_expire_due(now=T0 + HOUR) == 0  # and never twice
    assert request_actions(old) == ["activation.granted", "activation.expired"]


# --- Timeout -----------------------------------------------------------------------------------


def test_requests_nobody_decided_time_out_at_their_deadline(
    approver, clock, django_capture_on_commit_callbacks
):
    [request] = pending_requests(1, approver)
    deadline = request.decide_by

    assert jobs.activation_timeout_due(now=deadline - SECOND) == 0
    clock.move_to(deadline, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.activation_timeout_due() == 1

    request = reloaded(request)
    assert request.status == Status.TIMED_OUT and request.closed_at == deadline
    [event] = request_events(request, "activation.timed_out")
    assert event.actor is None
    assert sorted(m.to[0] for m in mail.outbox) == sorted([request.requester.email, approver.email])
    assert all("timed out" in m.subject.lower() for m in mail.outbox)
    assert jobs.activation_timeout_due(now=deadline + HOUR) == 0
    assert len(request_events(request, "activation.timed_out")) == 1


def test_timeout_catches_up_across_batches_and_leaves_decided_requests_alone(approver):
    stale = pending_requests(5, approver, now=T0 - 3 * 24 * HOUR)
    decided = approve(approver, pending_requests(1, approver, now=T0 - 3 * 24 * HOUR)[0], now=T0 - 60 * HOUR)
    fresh = pending_requests(1, approver)

    assert jobs.activation_timeout_due(now=T0, batch=2) == 5

    assert {reloaded(r).status for r in stale} == {Status.TIMED_OUT}
    assert reloaded(decided).status == Status.GRANTED
    assert reloaded(fresh[0]).status == Status.PENDING_APPROVAL
    assert AuditEvent.objects.filter(action="activation.timed_out").count() == 5


def test_an_extension_request_times_out_as_such(requester, approver):
    from activations.services import extension_request

    eligible = eligible_for(requester, role_with(approvers=[approver]), ends_at=T0 + 3 * 24 * HOUR)
    request = extension_request(
        requester=requester, eligible=eligible, duration=30 * 24 * HOUR, justification="x"
    )

    jobs.activation_timeout_due(now=request.decide_by)

    assert request_actions(request) == ["extend.requested", "extend.timed_out"]


# --- Reminders ---------------------------------------------------------------------------------


def emails(template):
    return list(Email.objects.filter(template=template).values_list("to", flat=True))


def test_the_requester_is_reminded_once_when_the_activation_ends_within_15_minutes():
    [request] = activations(1)

    assert jobs.reminders_send_due(now=T0 + HOUR - 16 * MINUTE) == 0
    assert jobs.reminders_send_due(now=T0 + HOUR - 15 * MINUTE) == 1
    assert jobs.reminders_send_due(now=T0 + HOUR - 5 * MINUTE) == 0

    assert emails("activation-ending") == [request.requester.email]
    assert reloaded(request).ending_reminder_sent_at == T0 + HOUR - 15 * MINUTE


def test_an_ended_activation_gets_no_reminder():
    activations(1)
    assert jobs.reminders_send_due(now=T0 + HOUR) == 0


def test_assignment_end_notices_are_sent_14_days_and_1_day_before_and_once_ended(requester):
    ends_at = T0 + 30 * 24 * HOUR
    eligible = eligible_for(requester, role_with(), ends_at=ends_at)
    day = 24 * HOUR

    sent = []
    for moment in (
        ends_at - 15 * day,  # nothing yet
        ends_at - 14 * day,  # 14 days
        ends_at - 13 * day,  # already sent
        ends_at - day,  # 1 day
        ends_at - day + HOUR,  # already sent
        ends_at,  # ended
        ends_at + day,  # already sent
    ):
        sent.append(jobs.reminders_send_due(now=moment))

    assert sent == [0, 1, 0, 1, 0, 1, 0]
    assert emails("assignment-ending") == [requester.email] * 3
    eligible.refresh_from_db()
    assert eligible.expiry_notice_days == 0


def test_an_assignment_ending_within_a_day_gets_only_the_1_day_notice(requester):
    eligible = eligible_for(requester, role_with(), ends_at=T0 + 12 * HOUR)

    assert jobs.reminders_send_due(now=T0) == 1

    [email] = Email.objects.filter(template="assignment-ending")
    assert "ends on" in email.body_text
    eligible.refresh_from_db()
    assert eligible.expiry_notice_days == 1


def test_direct_active_assignments_get_notices_but_activations_do_not(requester):
    direct = ActiveAssignmentFactory(user=requester, starts_at=T0, ends_at=T0 + 10 * 24 * HOUR)
    activations(1, duration=HOUR)

    jobs.assignment_expiry_notices(now=T0 + 9 * 24 * HOUR + HOUR)

    assert emails("assignment-ending") == [requester.email]
    direct.refresh_from_db()
    assert direct.expiry_notice_days == 1


# --- run_periodic ------------------------------------------------------------------------------


def test_run_periodic_runs_every_job_once_and_prints_the_counts(approver, clock):
    activations(2)
    pending_requests(1, approver)
    clock.move_to(T0 + 25 * HOUR, tick=False)
    out = StringIO()

    call_command("run_periodic", stdout=out)

    lines = out.getvalue().splitlines()
    assert "activations expired: 2" in lines
    assert "requests timed out: 1" in lines
    assert any(line.startswith("reminders sent: ") for line in lines)
    # The revokes of the expiry and every queued email were carried out by the drains.
    assert "directory operations done: 4" in lines  # two grants, two revokes
    assert not DirectoryOperation.objects.filter(status="pending").exists()
    assert not Email.objects.filter(status="pending").exists()
    assert any(line.startswith("emails sent: ") for line in lines)

    out = StringIO()
    call_command("run_periodic", stdout=out)
    assert "activations expired: 0" in out.getvalue().splitlines()
