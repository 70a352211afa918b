"""What the apps above audit tell it about themselves, each in its AppConfig.ready(): audit is
the ground floor and imports none of them.

- Principal targets: the models whose rows belong to a person (their requests, their
  assignments), so the explorer's "target principal" filter finds the events about them.
- Role finders: how a role is found from what an auditor types (its name, id or template id).
- Evidence pages: where an event about a target of some type links to (an activation's
  evidence, for one).
- Event hooks: called with the events just written, inside the transaction that writes them,
  so an app above can write outbox rows for them (integrations: webhook deliveries and chat
  messages) that commit, or roll back, with the events.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db.models import Model


@dataclass(frozen=True)
class PrincipalTarget:
    """Rows of ``model`` belong to the user that ``user_field`` names."""

    model: type[Model]
    user_field: str

    @property
    def target_type(self) -> str:
        """The target_type audit events record for such a row (see services._describe_target)."""
        return self.model._meta.label_lower


PRINCIPAL_TARGETS: list[PrincipalTarget] = []
# Each returns the ids of at most `limit` roles matching the text.
ROLE_FINDERS: list[Callable[..., list]] = []
# target_type -> the URL of the evidence page for one target id ("" if there is none).
EVIDENCE_PAGES: dict[str, Callable[[str], str]] = {}


def principal_target_register(model: type[Model], *, user_field: str) -> None:
    target = PrincipalTarget(model, user_field)
    if target not in PRINCIPAL_TARGETS:
        PRINCIPAL_TARGETS.append(target)


def role_finder_register(finder: Callable[..., list]) -> None:
    """``finder(text=..., limit=...)`` returns the ids of the roles the text names."""
    if finder not in ROLE_FINDERS:
        ROLE_FINDERS.append(finder)


def role_ids_find(*, text: str, limit: int = 2) -> list:
    """The ids of at most ``limit`` roles that ``text`` names (no role app: none)."""
    found: list = []
    for finder in ROLE_FINDERS:
        found += finder(text=text, limit=limit - len(found))
        if len(found) >= limit:
            break
    return found[:limit]


def evidence_page_register(model: type[Model], url: Callable[[str], str]) -> None:
    EVIDENCE_PAGES[model._meta.label_lower] = url


def evidence_url(*, target_type: str, target_id: str) -> str:
    """The evidence page of an event's target, or ""."""
    url = EVIDENCE_PAGES.get(target_type)
    return url(target_id) if url is not None and target_id else ""


class AppendedEvent(NamedTuple):
    """What an event hook reads of an event just appended: the set-based writer
    (audit_record_prepared) hands hooks these instead of AuditEvent instances, which the
    other writers hand them (both have these attributes)."""

    seq: int
    action: str
    target_type: str
    target_id: str


# Each is called with the events just appended (numbered and chained: AuditEvents, or
# AppendedEvents from the set-based writer), inside the writer's transaction. A hook reads
# only AppendedEvent's attributes and writes rows; it never calls out (that happens after
# commit).
EventHook = Callable[[Sequence[Any]], None]
EVENT_HOOKS: list[EventHook] = []


def event_hook_register(hook: EventHook) -> None:
    if hook not in EVENT_HOOKS:
        EVENT_HOOKS.append(hook)
