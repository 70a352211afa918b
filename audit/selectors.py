"""Reading the audit log: who may, events about a person, the explorer's pages, one event.

Pages are keyset pages on seq (``seq < before`` newest first, or ``seq > after``): no OFFSET,
so the hundredth page costs what the first does, and a page runs the same queries whatever
the size of the log. What to show comes from the search (audit.filters).
"""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, PermissionsMixin
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField, Func, Model, Q, QuerySet, UUIDField
from django.db.models.functions import Cast
from django.db.models.sql.compiler import SQLCompiler
from django.http import Http404

from . import registry
from .models import AuditEvent

PAGE_SIZE = 50
MAX_SEQ = 2**63 - 1  # a bigint: larger numbers in a URL are ignored, not sent to the database
VIEW_PERMISSION = "audit.view_auditevent"
LIST_FIELDS = (
    "seq",
    "occurred_at",
    "actor_label",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "target_label",
    "role_label",
    "scope",
    "request_id",
)


def audit_reader_check(*, user: PermissionsMixin | AnonymousUser) -> None:
    """The audit log is for those holding audit.view_auditevent (PIM Auditors, and PIM
    Administrators as the catalog grants, while the role is active); others get a 404."""
    if not user.has_perm(VIEW_PERMISSION):
        raise Http404("No such page.")


class UUIDText(Func):
    """A UUID column as text the way str(uuid) writes it, which is how audit events record the
    ids of their targets (SQLite stores UUIDs as 32 hex digits, PostgreSQL as uuid)."""

    output_field = CharField()
    template = "CAST(%(expressions)s AS text)"

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, tuple[str | int, ...]]:
        sql, params = compiler.compile(self.source_expressions[0])
        parts = " || '-' || ".join(f"substr({sql}, {start}, {length})" for start, length in _UUID_PARTS)
        return f"lower({parts})", params * len(_UUID_PARTS)


_UUID_PARTS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def about_principal(user_id: int) -> Q:
    """Events whose target is the person or a row of theirs (their requests, their direct
    assignments: registry.PRINCIPAL_TARGETS): each an indexed (target_type, target_id) lookup,
    in the same query."""
    about = Q(target_type=get_user_model()._meta.label_lower, target_id=str(user_id))
    for target in registry.PRINCIPAL_TARGETS:
        rows = target.model._default_manager.filter(**{target.user_field: user_id})
        about |= Q(target_type=target.target_type, target_id__in=rows.values(text=_pk_text(target.model)))
    return about


def _pk_text(model: type[Model]) -> Func:
    """The primary key as text, the way audit events record target ids."""
    if isinstance(model._meta.pk, UUIDField):
        return UUIDText("pk")
    return Cast("pk", output_field=CharField())


@dataclass(frozen=True)
class EventPage:
    """One page, newest first; ``older`` / ``newer`` are the keys of the next pages (or None)."""

    events: list[AuditEvent]
    older: int | None
    newer: int | None


def event_page(
    *,
    events: QuerySet[AuditEvent],
    before: int | None = None,
    after: int | None = None,
    size: int = PAGE_SIZE,
) -> EventPage:
    """A page of the events (a search's, unordered) older than ``before``, newer than
    ``after``, or the newest: one query."""
    events = events.only(*LIST_FIELDS)
    if after is not None:
        rows = list(events.filter(seq__gt=after).order_by("seq")[: size + 1])
        more = len(rows) > size
        rows = rows[:size][::-1]
        return EventPage(rows, older=rows[-1].seq if rows else None, newer=rows[0].seq if more else None)
    if before is not None:
        events = events.filter(seq__lt=before)
    rows = list(events.order_by("-seq")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    newer = rows[0].seq if rows and before is not None else None
    return EventPage(rows, older=rows[-1].seq if more else None, newer=newer)


def page_key(value: str | None) -> int | None:
    """A seq from a URL parameter, or None for anything that is not one."""
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    number = int(value)
    return number if 0 < number <= MAX_SEQ else None


def event_get(*, seq: int) -> AuditEvent:
    event = AuditEvent.objects.filter(seq=seq).first() if 0 < seq <= MAX_SEQ else None
    if event is None:
        raise Http404("No such event.")
    return event
