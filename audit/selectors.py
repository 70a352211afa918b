"""Reading the audit log: who may, the explorer's search and pages, one event.

Pages are keyset pages on seq (``seq < before`` newest first, or ``seq > after``): no OFFSET,
so the hundredth page costs what the first does, and a page runs the same queries whatever
the size of the log.
"""

from dataclasses import dataclass

from django.db.models import CharField, Func, Q, QuerySet
from django.http import Http404

from accounts.models import User
from activations.models import ActivationRequest
from roles.models import ActiveAssignment, EligibleAssignment

from .forms import EventFilter
from .models import AuditEvent

PAGE_SIZE = 50
MAX_SEQ = 2**63 - 1  # a bigint: larger numbers in a URL are ignored, not sent to the database
VIEW_PERMISSION = "audit.view_auditevent"
REQUEST_TARGET = "activations.activationrequest"
ACTIVE_ASSIGNMENT_TARGET = "roles.activeassignment"
ELIGIBLE_ASSIGNMENT_TARGET = "roles.eligibleassignment"
USER_TARGET = "accounts.user"
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


def audit_reader_check(*, user: User) -> None:
    """The audit log is for those holding audit.view_auditevent (PIM Auditors, and PIM
    Administrators as the catalog grants, while the role is active); others get a 404."""
    if not user.has_perm(VIEW_PERMISSION):
        raise Http404("No such page.")


class UUIDText(Func):
    """A UUID column as text the way str(uuid) writes it, which is how audit events record the
    ids of their targets (SQLite stores UUIDs as 32 hex digits, PostgreSQL as uuid)."""

    output_field = CharField()

    def as_sql(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, template="CAST(%(expressions)s AS text)", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        parts = " || '-' || ".join(f"substr({sql}, {start}, {length})" for start, length in _UUID_PARTS)
        return f"lower({parts})", params * len(_UUID_PARTS)


_UUID_PARTS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


def event_search(*, criteria: EventFilter) -> QuerySet:
    """Events matching the filter, unordered (callers order by seq)."""
    events = AuditEvent.objects.all()
    if criteria.since is not None:
        events = events.filter(occurred_at__gte=criteria.since)
    if criteria.until is not None:
        events = events.filter(occurred_at__lt=criteria.until)
    if criteria.actor_is_system:
        events = events.filter(actor__isnull=True)
    elif criteria.actor_id is not None:
        events = events.filter(actor_id=criteria.actor_id)
    if criteria.principal_id is not None:
        events = events.filter(_about_principal(criteria.principal_id))
    if criteria.target_id:
        events = events.filter(target_id=criteria.target_id)
    if criteria.role_id is not None:
        events = events.filter(role_id=criteria.role_id)
    if criteria.scope:
        events = events.filter(**{"scope__startswith" if criteria.scope_prefix else "scope": criteria.scope})
    if criteria.action:
        events = events.filter(
            **{"action__startswith" if criteria.action_prefix else "action": criteria.action}
        )
    if criteria.request_id:
        events = events.filter(request_id=criteria.request_id)
    if criteria.outcome:
        events = events.filter(outcome=criteria.outcome)
    return events


def _about_principal(user_id: int) -> Q:
    """Events whose target is the person, one of their requests or one of their (direct)
    assignments: each an indexed (target_type, target_id) lookup, in the same query."""

    def ids(model, **lookup):
        return model.objects.filter(**lookup).values(text=UUIDText("pk"))

    return (
        Q(target_type=USER_TARGET, target_id=str(user_id))
        | Q(target_type=REQUEST_TARGET, target_id__in=ids(ActivationRequest, requester_id=user_id))
        | Q(target_type=ACTIVE_ASSIGNMENT_TARGET, target_id__in=ids(ActiveAssignment, user_id=user_id))
        | Q(target_type=ELIGIBLE_ASSIGNMENT_TARGET, target_id__in=ids(EligibleAssignment, user_id=user_id))
    )


@dataclass(frozen=True)
class EventPage:
    """One page, newest first; ``older`` / ``newer`` are the keys of the next pages (or None)."""

    events: list
    older: int | None
    newer: int | None


def event_page(
    *, criteria: EventFilter, before: int | None = None, after: int | None = None, size: int = PAGE_SIZE
) -> EventPage:
    """A page of events older than ``before``, newer than ``after``, or the newest: one query."""
    events = event_search(criteria=criteria).only(*LIST_FIELDS)
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
