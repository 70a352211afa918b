"""Running a service's transaction again when the database broke a lock cycle.

The services take their row locks in one order (see roles.services and activations.services),
so concurrent transitions wait for each other instead of deadlocking. What is left — a cycle
through rows no service orders (a foreign key's share lock, the audit chain head taken by a
receiver), or a serialization failure — PostgreSQL breaks by aborting one transaction. That
transaction's work is all rolled back (with its on-commit callbacks), so it can simply run
again: once, on a fresh transaction, where it sees what the other one committed.
"""

import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, models, transaction
from django.db.models.expressions import RawSQL

logger = logging.getLogger(__name__)

# PostgreSQL's SQLSTATEs for "run the transaction again": deadlock_detected, serialization_failure.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})

P = ParamSpec("P")
R = TypeVar("R")


def is_retryable(error: BaseException) -> bool:
    """Whether the database aborted the transaction to break a deadlock or a serialization
    conflict (Django's OperationalError wraps psycopg's error, which carries the SQLSTATE)."""
    cause = error.__cause__
    code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    return isinstance(error, OperationalError) and code in RETRYABLE_SQLSTATES


def retry_on_deadlock(service: Callable[P, R]) -> Callable[P, R]:
    """Run the service once more if its transaction was aborted by a deadlock or a
    serialization failure. Only the outermost transaction can be re-run: called inside a
    caller's transaction (a service calling another, a receiver, a test's transaction) it runs
    once and the error goes up to whoever owns the transaction."""

    @functools.wraps(service)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        if transaction.get_connection().in_atomic_block:
            return service(*args, **kwargs)
        try:
            return service(*args, **kwargs)
        except OperationalError as error:
            if not is_retryable(error):
                raise
            name = getattr(service, "__qualname__", repr(service))
            logger.warning("%s: %s; running it again", name, str(error).splitlines()[0])
        return service(*args, **kwargs)

    return run


def many_ids(ids: Sequence[Any]) -> Any:
    """The value for an ``__in`` lookup over many UUID keys (thousands, from a set-based job):
    on PostgreSQL one array parameter, ``IN (SELECT unnest(%s::uuid[]))``, instead of a
    placeholder per id, which the driver and the server would each parse anew at every call;
    elsewhere the ids as they are."""
    if connection.vendor != "postgresql":
        return list(ids)
    return RawSQL("SELECT unnest(%s::uuid[])", [uuid_array(ids)])


def uuid_array(ids: Iterable[Any]) -> str:
    """UUIDs as PostgreSQL's text form of a ``uuid[]``, for a ``%s::uuid[]`` parameter: one
    string for the driver to quote, where a list is quoted item by item (Django's cursors bind
    client-side): for a batch of 1,000 ids a millisecond less. Each id is read as a UUID
    first, so nothing but UUIDs can reach the literal."""
    return "{" + ",".join(str(i if isinstance(i, uuid.UUID) else uuid.UUID(str(i))) for i in ids) + "}"


def in_parallel(work: Callable[[], int], *, workers: int) -> int:
    """Run ``work`` in ``workers`` threads at once, each on its own database connection
    (closed when its thread ends), and return the sum of what they return; the first error
    is raised once every thread has stopped. For set-based jobs that claim their batches with
    FOR UPDATE SKIP LOCKED, so that the threads take disjoint rows and share the load between
    the database's cores. Runs ``work`` once, in this thread, where that is not safe or not
    possible: one worker, a database without SKIP LOCKED, or inside a transaction (whose
    uncommitted rows another connection would not see)."""
    if (
        workers <= 1
        or not connection.features.has_select_for_update_skip_locked
        or connection.in_atomic_block
    ):
        return work()
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as error:  # re-raised in the caller's thread below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=run, name=f"{getattr(work, '__name__', 'work')}-{n}") for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(results)


def fetchone_prepared(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """Run a hot, hand-written statement and return its first row. On PostgreSQL (unless
    PIM_DB_PREPARED_STATEMENTS is off) it is a server-side prepared statement on the
    request's own connection and transaction: planned once per connection, not at every call
    (Django's own cursors bind parameters client-side, so PostgreSQL plans each statement
    anew). Logged like any query, so the query-count tests still see it.

    It is on the path of every authorization check, so it does little else: the connection
    wrapper is looked up once, not through ``django.db.connection``'s per-attribute proxy."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or not settings.PIM_DB_PREPARED_STATEMENTS:
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            first: tuple[Any, ...] | None = cursor.fetchone()
            return first
    import psycopg

    db.ensure_connection()
    raw = db.connection
    # Django turns psycopg's prepared statements off (prepare_threshold None) so that poolers
    # work; for this statement only they are on (the threshold is never reached by Django's
    # own client-side-bound statements, and it is put back at once).
    threshold = raw.prepare_threshold
    start = time.monotonic()
    try:
        if threshold is None:
            raw.prepare_threshold = 2**31 - 1
        with db.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            cursor.execute(sql, params, prepare=True)
            row = cursor.fetchone()
    finally:
        raw.prepare_threshold = threshold
    if db.queries_logged:
        db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - start:.3f}"})
    return row


def bulk_insert(model: type[models.Model], objs: Sequence[models.Model], *, batch_size: int = 5000) -> None:
    """Insert unsaved instances in bulk. On PostgreSQL with COPY: the instances' field values
    as they are (every concrete field; the primary key too, so it must be set, as a UUID
    default does), with no SQL compiled per row, which bulk_create spends most of its time on
    for wide rows. Elsewhere bulk_create. No signals either way (bulk_create sends none)."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objs, batch_size=batch_size)
        return
    fields = [
        field
        for field in model._meta.concrete_fields
        if getattr(objs[0], field.attname) is not None or not field.primary_key
    ]
    _copy(model, fields, ([getattr(obj, field.attname) for field in fields] for obj in objs), len(objs))


def bulk_insert_values(
    model: type[models.Model],
    rows: Sequence[Mapping[str, Any]],
    *,
    json_text: Mapping[str, str] | None = None,
) -> None:
    """bulk_insert for rows given as field values by attribute name (``role_id``, not
    ``role``), with no model instance built per row: every concrete field of the model but an
    automatic primary key, each row naming them all; the values as a model instance would
    hold them. On PostgreSQL with COPY; elsewhere bulk_create of instances made from them.
    ``json_text`` names, for a JSON field, the key under which each row already holds the
    field's value as JSON text (written out anyway, as the audit chain's canonical details
    are): COPY sends that text instead of encoding the value again."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create([model(**row) for row in rows], batch_size=5000)
        return
    fields = [field for field in model._meta.concrete_fields if field is not model._meta.auto_field]
    names = [(json_text or {}).get(field.attname, field.attname) for field in fields]
    encoded = set(json_text or ())
    _copy(
        model,
        fields,
        ([row[name] for name in names] for row in rows),
        len(rows),
        encode=[field for field in fields if field.attname not in encoded],
    )


def _copy(
    model: type[models.Model],
    fields: "list[models.Field[Any, Any]]",
    rows: Iterable[list[Any]],
    count: int,
    *,
    encode: "list[models.Field[Any, Any]] | None" = None,
) -> None:
    """COPY rows of these fields' values (JSON fields encoded with their encoder, of those in
    ``encode`` if given) into the model's table, logged like a query when queries are logged."""
    encoders = {
        index: field
        for index, field in enumerate(fields)
        if isinstance(field, models.JSONField) and (encode is None or field in encode)
    }
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in fields)
    sql = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"
    start = time.monotonic()
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                for index, field in encoders.items():
                    row[index] = json.dumps(row[index], cls=field.encoder)
                copy.write_row(row)
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": f"{sql} -- {count} rows", "time": f"{time.monotonic() - start:.3f}"}
        )


# --- Set-based statements (INSERT ... SELECT) written once for PostgreSQL and SQLite --------


def compiled_select(queryset: models.QuerySet[Any]) -> tuple[str, list[Any], list[str]]:
    """A queryset's SELECT as SQL and parameters (adapted for the database, as the ORM does),
    with the alias of each selected column in order: to wrap it in a hand-written statement
    (INSERT ... SELECT) without relying on the order Django happens to put annotations in."""
    compiler = queryset.query.get_compiler(using=queryset.db)
    sql, params = compiler.as_sql()
    aliases = [str(alias) for _, _, alias in compiler.select]
    return sql, list(params), aliases


def sql_random_uuid() -> str:
    """An SQL expression giving a fresh random (version 4) UUID per row, in the form Django
    stores a UUIDField in: a native uuid on PostgreSQL (gen_random_uuid, core since 13; Django
    5.2 needs 14), 32 hex digits elsewhere."""
    if connection.vendor == "postgresql":
        return "gen_random_uuid()"
    hex_digits = "lower(hex(randomblob({})))"
    return (
        f"({hex_digits.format(4)} || {hex_digits.format(2)} || '4' || substr({hex_digits.format(2)}, 2)"
        f" || substr('89ab', 1 + (random() & 3), 1) || substr({hex_digits.format(2)}, 2)"
        f" || {hex_digits.format(6)})"
    )


def sql_utc_date_text(expression: str) -> str:
    """An SQL expression formatting a timestamp as its UTC date, YYYY-MM-DD (what Python's
    f"{moment:%Y-%m-%d}" gives for the aware UTC datetime Django reads), whatever the
    session's DateStyle. SQLite holds timestamps as naive UTC text, date first."""
    if connection.vendor == "postgresql":
        return f"to_char(({expression}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    return f"substr({expression}, 1, 10)"


def db_value(model: type[models.Model], field_name: str, value: Any) -> Any:
    """A value as a raw statement's parameter for the model's field (a UUID is 32 hex digits
    on SQLite, a datetime naive UTC text there): what the ORM would send."""
    field = model._meta.get_field(field_name)
    return field.get_db_prep_value(value, connection, prepared=False)  # type: ignore[union-attr]
