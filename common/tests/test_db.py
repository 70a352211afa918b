import logging
import threading
import uuid

import psycopg.errors
import pytest
from django.db import OperationalError, connection, transaction

from accounts.models import User
from common.db import is_retryable, many_ids, retry_on_deadlock, uuid_array
from roles.models import EligibleAssignment
from tests.factories import EligibleAssignmentFactory, UserFactory


def aborted(error_class):
    """Django's OperationalError as the PostgreSQL back end raises it (psycopg's as the cause)."""
    try:
        try:
            raise error_class("aborted to break the cycle")
        except psycopg.Error as cause:
            raise OperationalError(*cause.args) from cause
    except OperationalError as error:
        return error


class Flaky:
    """A service that fails with the given errors, then answers "done"."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, *, value):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return f"done {value}"


@pytest.mark.parametrize(
    "error_class", [psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure]
)
def test_a_deadlock_or_serialization_failure_runs_the_service_once_more(error_class, caplog):
    service = Flaky(aborted(error_class))

    assert retry_on_deadlock(service)(value=1) == "done 1"

    assert service.calls == 2
    assert "running it again" in caplog.text


def test_a_second_deadlock_reaches_the_caller():
    service = Flaky(aborted(psycopg.errors.DeadlockDetected), aborted(psycopg.errors.DeadlockDetected))

    with pytest.raises(OperationalError):
        retry_on_deadlock(service)(value=1)

    assert service.calls == 2


def test_other_database_errors_are_not_retried():
    service = Flaky(aborted(psycopg.errors.QueryCanceled))

    with pytest.raises(OperationalError):
        retry_on_deadlock(service)(value=1)

    assert service.calls == 1
    assert not is_retryable(OperationalError("no cause"))


@pytest.mark.django_db
def test_inside_the_callers_transaction_the_error_goes_to_the_caller():
    service = Flaky(aborted(psycopg.errors.DeadlockDetected))

    with transaction.atomic(), pytest.raises(OperationalError):
        retry_on_deadlock(service)(value=1)

    assert service.calls == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_transactions_locking_in_opposite_orders_both_finish(caplog):
    caplog.set_level(logging.WARNING, logger="common.db")
    first, second = UserFactory(), UserFactory()
    barrier = threading.Barrier(2)
    attempts = []
    # The run that PostgreSQL aborted goes again once the other has committed, as it would in
    # the portal; without this, on a loaded machine the re-run can grab its first row before
    # the survivor does and start a second cycle.
    survivor_done = threading.Event()

    @retry_on_deadlock
    def lock_both(one, other):
        attempts.append(one.pk)
        if len(attempts) > 2:
            survivor_done.wait(timeout=10)
        with transaction.atomic():
            list(User.objects.select_for_update().filter(pk=one.pk).values_list("pk"))
            if len(attempts) <= 2:
                barrier.wait(timeout=10)  # both hold their first row: a cycle
            list(User.objects.select_for_update().filter(pk=other.pk).values_list("pk"))
        return "done"

    results = []

    def run(one, other):
        try:
            results.append(lock_both(one, other))
            survivor_done.set()
        except Exception as error:  # the outcome is what the test inspects
            results.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in ((first, second), (second, first))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert results == ["done", "done"]
    assert len(attempts) == 3  # PostgreSQL aborted one; it ran again once
    assert "deadlock detected" in caplog.text


def test_uuid_array_is_the_text_of_a_uuid_array_and_takes_nothing_but_uuids():
    first, second = uuid.UUID(int=1), uuid.UUID(int=2, version=4)

    assert uuid_array([first, str(second).upper()]) == f"{{{first},{second}}}"
    assert uuid_array([]) == "{}"
    with pytest.raises(ValueError):  # a comma would otherwise add an id of its own
        uuid_array([f"{first},{second}"])


@pytest.mark.postgres
@pytest.mark.django_db
def test_many_ids_selects_exactly_the_rows_named():
    users = [UserFactory() for _ in range(3)]
    named = [EligibleAssignmentFactory(user=user).pk for user in users[:2]]
    EligibleAssignmentFactory(user=users[2])

    assert set(EligibleAssignment.objects.filter(pk__in=many_ids(named)).values_list("pk", flat=True)) == set(
        named
    )
