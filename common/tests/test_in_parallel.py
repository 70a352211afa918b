"""common.db.in_parallel: a set-based job's work on several connections at once, or once in
the caller's thread where other connections could not share it."""

import threading

import pytest
from django.db import connection, transaction

from common.db import in_parallel
from tests.factories import UserFactory


def _work(record):
    def work():
        record.append((threading.current_thread().name, connection.in_atomic_block))
        return 2

    return work


@pytest.mark.django_db
def test_inside_a_transaction_the_work_runs_once_in_the_callers_thread():
    record = []
    with transaction.atomic():
        assert in_parallel(_work(record), workers=3) == 2
    assert record == [("MainThread", True)]


@pytest.mark.django_db
def test_one_worker_runs_the_work_once_in_the_callers_thread():
    record = []
    assert in_parallel(_work(record), workers=1) == 2
    assert [name for name, _ in record] == ["MainThread"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_each_worker_has_its_own_connection_and_the_results_add_up():
    UserFactory(username="seen.by.all")  # committed: every worker's connection sees it
    seen = []
    barrier = threading.Barrier(3)

    def work():
        barrier.wait(timeout=30)  # all three at once, each on its own connection
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_backend_pid(), count(*) FROM accounts_user WHERE username = %s", ["seen.by.all"]
            )
            seen.append(cursor.fetchone())
        return 5

    assert in_parallel(work, workers=3) == 15
    assert len({pid for pid, _ in seen}) == 3 and {count for _, count in seen} == {1}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_error_in_one_worker_is_raised_after_all_have_stopped():
    finished = []

    def work():
        if threading.current_thread().name.endswith("-1"):
            raise RuntimeError("batch failed")
        finished.append(threading.current_thread().name)
        return 1

    with pytest.raises(RuntimeError, match="batch failed"):
        in_parallel(work, workers=3)
    assert sorted(finished) == ["work-0", "work-2"]
