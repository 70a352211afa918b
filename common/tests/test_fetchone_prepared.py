"""common.db.fetchone_prepared: the authorization check's one statement, prepared once per
connection on PostgreSQL and run like any other query everywhere."""

import pytest
from django.db import ProgrammingError, connection
from django.test.utils import CaptureQueriesContext

from common.db import fetchone_prepared

pytestmark = pytest.mark.django_db

STATEMENT = "SELECT CAST(%s AS integer) + 1 AS answer /* fetchone_prepared test */"


def prepared_runs(marker: str) -> tuple[int, int] | None:
    """(generic, custom) plan counts of this connection's prepared statement, None if none."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            [f"%{marker}%"],
        )
        return cursor.fetchone()


def test_the_first_row_with_bound_values():
    assert fetchone_prepared(STATEMENT, [41]) == (42,)
    assert fetchone_prepared("SELECT 1 WHERE 1 = %s", [2]) is None


def test_it_is_logged_like_any_query():
    with CaptureQueriesContext(connection) as queries:
        fetchone_prepared(STATEMENT, [1])

    assert len(queries) == 1
    assert "fetchone_prepared test" in queries[0]["sql"]


@pytest.mark.postgres
def test_on_postgresql_it_is_prepared_once_and_reused():
    for value in range(7):
        assert fetchone_prepared(STATEMENT, [value]) == (value + 1,)

    generic, custom = prepared_runs("fetchone_prepared test")
    assert generic + custom == 7
    # Django's own statements stay unprepared: its threshold is put back.
    assert connection.connection.prepare_threshold is None


@pytest.mark.postgres
def test_with_prepared_statements_off_nothing_is_prepared(settings):
    settings.PIM_DB_PREPARED_STATEMENTS = False

    assert fetchone_prepared(STATEMENT, [1]) == (2,)

    assert prepared_runs("fetchone_prepared test") is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_failing_statement_raises_djangos_error_and_leaves_the_connection_usable():
    with pytest.raises(ProgrammingError):
        fetchone_prepared("SELECT no_such_column FROM accounts_user WHERE id = %s", [1])

    assert connection.connection.prepare_threshold is None
    assert fetchone_prepared(STATEMENT, [2]) == (3,)
