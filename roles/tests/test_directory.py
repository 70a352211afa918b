"""The directory outbox (SPEC 2.7, 5): grants and revokes are recorded in the transaction
that changed the assignment, carried out after commit, claimed so each runs once, retried
with back-off when the directory is unavailable, and never run out of order."""

from datetime import timedelta
from unittest import mock

import pytest
from django.test import override_settings

from activations import services as activation_services
from activations.tests.helpers import HOUR, T0, eligible_for, request_activation, role_with
from audit.models import AuditEvent
from roles import directory_services
from roles.directory import DirectoryBackend, PermanentDirectoryError, TransientDirectoryError
from roles.models import DirectoryOperation
from roles.services import eligible_remove
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BACKEND = "roles.tests.test_directory.ScriptedBackend"
Op = DirectoryOperation.Operation
Status = DirectoryOperation.Status


class ScriptedBackend(DirectoryBackend):
    """Records every call; `script` says what the next calls do (an exception to raise, a
    callable to run, or a result), then success."""

    calls: list = []
    script: list = []

    def grant(self, assignment) -> dict:
        return self._call("grant", assignment)

    def revoke(self, assignment) -> dict:
        return self._call("revoke", assignment)

    def _call(self, operation, assignment):
        type(self).calls.append((operation, assignment.pk))
        step = type(self).script.pop(0) if type(self).script else None
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(assignment)
        return step or {"id": f"{operation}-{assignment.pk}"}


@pytest.fixture(autouse=True)
def backend(time_machine):
    time_machine.move_to(T0, tick=False)
    ScriptedBackend.calls, ScriptedBackend.script = [], []
    with override_settings(PIM_DIRECTORY_BACKEND=BACKEND):
        yield ScriptedBackend


@pytest.fixture
def activation(requester):
    """A granted activation whose directory grant is recorded but not yet run."""
    return request_activation(requester, eligible_for(requester, role_with()))


def op(operation=Op.GRANT) -> DirectoryOperation:
    return DirectoryOperation.objects.get(operation=operation)


def run(operation=Op.GRANT, now=None) -> bool:
    return directory_services.directory_operation_run(operation_id=op(operation).pk, now=now)


def directory_events(action=None):
    events = AuditEvent.objects.filter(action__startswith="directory.")
    return list(events.filter(action=action) if action else events)


# --- Recorded in the transaction, run after commit ---------------------------------------------


def test_a_grant_is_recorded_with_the_activation_and_run_only_after_commit(
    requester, backend, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        request = request_activation(requester, eligible_for(requester, role_with()))
        assert op().status == Status.PENDING and backend.calls == []

    assert backend.calls == []  # still nothing: the transaction has not committed
    for callback in callbacks:
        callback()

    assignment = request.active_assignment
    assert backend.calls == [("grant", assignment.pk)]
    grant = op()
    assert (grant.status, grant.attempts, grant.result) == (Status.DONE, 1, {"id": f"grant-{assignment.pk}"})
    assert grant.completed_at == T0
    [event] = directory_events()
    assert (event.action, event.target_id, event.outcome) == (
        "directory.grant_confirmed",
        str(assignment.pk),
        "success",
    )
    assert event.details["attempts"] == 1


def test_a_refused_activation_records_no_directory_operation(requester):
    with pytest.raises(activation_services.ActivationError):
        request_activation(requester, eligible_for(requester, role_with()), duration=timedelta(minutes=1))
    assert not DirectoryOperation.objects.exists()


@pytest.mark.parametrize("ending", ["deactivate", "revoke", "remove_eligibility"])
def test_every_way_an_activation_ends_records_a_revoke(activation, admin, backend, ending):
    run()  # the grant
    if ending == "deactivate":
        activation_services.activation_deactivate(requester=activation.requester, request=activation)
    elif ending == "revoke":
        activation_services.activation_revoke(actor=admin, request=activation, reason="Incident")
    else:
        eligible_remove(actor=admin, assignment=activation.eligible, reason="Left")

    revoke = op(Op.REVOKE)
    assert (revoke.assignment_id, revoke.status) == (activation.active_assignment_id, Status.PENDING)
    assert run(Op.REVOKE) is True
    assert backend.calls == [("grant", revoke.assignment_id), ("revoke", revoke.assignment_id)]
    assert [e.action for e in directory_events()] == [
        "directory.grant_confirmed",
        "directory.revoke_confirmed",
    ]


# --- Claims ------------------------------------------------------------------------------------


def test_running_an_operation_twice_does_it_once(activation, backend):
    assert run() is True
    assert run() is False
    assert directory_services.directory_outbox_drain() == 0
    assert len(backend.calls) == 1 and len(directory_events()) == 1


def test_an_operation_in_flight_is_not_claimed_again(activation, backend):
    # While the back end is busy with the grant, the task (or the drain) runs it again.
    nested = []
    backend.script = [lambda assignment: nested.append(run()) or {}]

    assert run() is True

    assert nested == [False]
    assert len(backend.calls) == 1


def test_a_worker_that_died_mid_call_leaves_the_operation_to_be_retried_after_its_lease(
    activation, backend, time_machine
):
    backend.script = [RuntimeError("worker killed")]
    with pytest.raises(RuntimeError):
        run()
    assert op().status == Status.PENDING

    assert (
        directory_services.directory_outbox_drain(now=T0 + directory_services.LEASE - timedelta(seconds=1))
        == 0
    )
    time_machine.move_to(T0 + directory_services.LEASE, tick=False)
    assert directory_services.directory_outbox_drain() == 1
    assert (op().status, op().attempts) == (Status.DONE, 2)


def test_with_the_broker_down_the_operation_waits_for_the_drain(
    requester, backend, django_capture_on_commit_callbacks
):
    with mock.patch(
        "roles.tasks.directory_operation_run.apply_async", side_effect=ConnectionError("broker down")
    ):
        with django_capture_on_commit_callbacks(execute=True):
            request = request_activation(requester, eligible_for(requester, role_with()))

    assert request.status == "granted" and op().status == Status.PENDING and backend.calls == []
    assert directory_services.directory_outbox_drain() == 1
    assert op().status == Status.DONE


# --- Failures ----------------------------------------------------------------------------------


def test_a_transient_failure_is_retried_later_with_back_off(activation, backend, time_machine):
    backend.script = [TransientDirectoryError("503"), TransientDirectoryError("503")]

    assert run() is False
    grant = op()
    assert (grant.status, grant.attempts, grant.last_error) == (Status.PENDING, 1, "503")
    assert grant.next_attempt_at == T0 + timedelta(seconds=10)
    assert directory_events() == []  # a retry is not an outcome

    assert directory_services.directory_outbox_drain(now=T0 + timedelta(seconds=9)) == 0
    time_machine.move_to(T0 + timedelta(seconds=10), tick=False)
    assert directory_services.directory_outbox_drain() == 0  # failed again: now 20 s
    assert op().next_attempt_at == T0 + timedelta(seconds=30)

    time_machine.move_to(T0 + timedelta(seconds=30), tick=False)
    assert directory_services.directory_outbox_drain() == 1
    assert (op().status, op().attempts) == (Status.DONE, 3)
    assert len(backend.calls) == 3
    assert [e.action for e in directory_events()] == ["directory.grant_confirmed"]


def test_retry_after_from_the_directory_is_respected(activation, backend):
    backend.script = [TransientDirectoryError("429", retry_after=120)]
    run()
    assert op().next_attempt_at == T0 + timedelta(seconds=120)


def test_back_off_is_capped(activation, backend):
    DirectoryOperation.objects.update(attempts=15)
    backend.script = [TransientDirectoryError("timeout")]
    run()
    assert op().next_attempt_at == T0 + directory_services.MAX_BACKOFF


def test_a_permanent_failure_marks_the_operation_failed_with_an_event(activation, backend):
    backend.script = [PermanentDirectoryError("role not found")]

    assert run() is False

    grant = op()
    assert (grant.status, grant.last_error) == (Status.FAILED, "role not found")
    [event] = directory_events()
    assert (event.action, event.outcome) == ("directory.grant_failed", "failure")
    assert event.target_id == str(activation.active_assignment_id)
    assert event.details["result"] == {"error": "role not found"}
    assert directory_services.directory_outbox_drain(now=T0 + HOUR) == 0
    assert len(backend.calls) == 1


def test_transient_failures_give_up_after_the_maximum_attempts(activation, backend):
    DirectoryOperation.objects.update(attempts=directory_services.MAX_ATTEMPTS - 1)
    backend.script = [TransientDirectoryError("still down")]

    run()

    assert op().status == Status.FAILED
    assert [e.action for e in directory_events()] == ["directory.grant_failed"]


# --- Order -------------------------------------------------------------------------------------


def test_a_revoke_waits_while_the_earlier_grant_is_pending(activation, backend, time_machine):
    backend.script = [TransientDirectoryError("503")]
    run()  # the grant failed: retried in 10 s
    activation_services.activation_deactivate(requester=activation.requester, request=activation)

    assert run(Op.REVOKE) is False  # not before the grant
    assert backend.calls == [("grant", activation.active_assignment_id)]
    assert op(Op.REVOKE).next_attempt_at == T0 + timedelta(seconds=30)

    time_machine.move_to(T0 + timedelta(seconds=30), tick=False)
    assert directory_services.directory_outbox_drain() == 2
    # The assignment ended meanwhile, so the grant is not retried; the revoke runs after it
    # (whatever the first attempt left in the directory, revoking it is harmless).
    assert [call[0] for call in backend.calls] == ["grant", "revoke"]
    assert op().result == {"skipped": "ended before provisioning"}


def test_waiting_for_the_grant_does_not_use_up_the_revokes_attempts(activation, backend, time_machine):
    # The directory throttles the grant for an hour; meanwhile the drain runs every minute
    # and the revoke waits each time. Waiting is not an attempt: once the grant is through,
    # the revoke still gets its full retries.
    backend.script = [TransientDirectoryError("429", retry_after=3600)]
    run()
    activation_services.activation_deactivate(requester=activation.requester, request=activation)
    for minute in range(1, 26):
        time_machine.move_to(T0 + minute * timedelta(minutes=1), tick=False)
        directory_services.directory_outbox_drain()
    assert op(Op.REVOKE).attempts == 0

    time_machine.move_to(T0 + HOUR, tick=False)
    directory_services.directory_outbox_drain()  # the grant goes through
    time_machine.move_to(T0 + HOUR + timedelta(seconds=30), tick=False)
    backend.script = [TransientDirectoryError("503")]
    directory_services.directory_outbox_drain()  # the revoke's first real attempt fails

    revoke = op(Op.REVOKE)
    assert (revoke.status, revoke.attempts) == (Status.PENDING, 1)
    assert revoke.next_attempt_at == T0 + HOUR + timedelta(seconds=40)


def test_a_grant_for_an_assignment_that_already_ended_is_skipped(activation, backend):
    activation_services.activation_deactivate(requester=activation.requester, request=activation)

    assert directory_services.directory_outbox_drain() == 2

    assert backend.calls == [("revoke", activation.active_assignment_id)]  # never granted
    assert op().result == {"skipped": "ended before provisioning"}
    assert [e.action for e in directory_events()] == [
        "directory.grant_confirmed",
        "directory.revoke_confirmed",
    ]


def test_a_scheduled_activation_is_provisioned_with_its_own_start(requester, backend):
    request = request_activation(requester, eligible_for(requester, role_with()), starts_at=T0 + HOUR)
    assert run() is True
    assert backend.calls == [("grant", request.active_assignment_id)]


def test_the_back_end_path_comes_from_the_setting(backend, activation):
    with override_settings(PIM_DIRECTORY_BACKEND="roles.directory.NullBackend"):
        assert run() is True
    assert backend.calls == [] and op().result == {}


def test_a_revoke_does_not_wait_for_the_grants_of_other_assignments(backend):
    first, second = UserFactory(), UserFactory()
    one = request_activation(first, eligible_for(first, role_with()))
    two = request_activation(second, eligible_for(second, role_with()))
    grants = DirectoryOperation.objects.filter(operation=Op.GRANT)
    backend.script = [TransientDirectoryError("503")]
    directory_services.directory_operation_run(operation_id=grants.get(assignment=one.active_assignment).pk)
    directory_services.directory_operation_run(operation_id=grants.get(assignment=two.active_assignment).pk)
    activation_services.activation_deactivate(requester=second, request=two)

    assert run(Op.REVOKE) is True
    assert backend.calls[-1] == ("revoke", two.active_assignment_id)


def test_a_batch_message_runs_each_of_its_operations_once(requester, backend):
    first = request_activation(requester, eligible_for(requester, role_with()))
    second = request_activation(requester, eligible_for(requester, role_with()))
    ids = list(DirectoryOperation.objects.filter(operation=Op.GRANT).values_list("pk", flat=True))
    assert len(ids) == 2

    assert directory_services.directory_operations_run(operation_ids=ids) == 2
    assert directory_services.directory_operations_run(operation_ids=ids) == 0  # claimed: nothing twice

    assert sorted(pk for _, pk in backend.calls) == sorted(
        [first.active_assignment_id, second.active_assignment_id]
    )
    assert set(DirectoryOperation.objects.values_list("status", flat=True)) == {Status.DONE}
