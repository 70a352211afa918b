"""Entra's notification matrix (research/entra-pim.md §3.3 rules 9-17, §3.5): three events
(a member made eligible, a member given an active assignment, an eligible member activating)
times three audiences (administrators, the assignee or requester, the approvers). Each of the
nine rules has its *default recipients* on or off, *additional recipients* (addresses), and
*critical emails only* (only emails that ask the recipient to act are sent). Entra's defaults:
every rule on, no additional recipients, all emails.

Default recipients: administrators are the PIM Administrators (eligible or active); the
assignee is the user, or every member of the group, the assignment is for; approvers are the
people who may approve the request. One event notifies at most PIM_NOTIFICATION_MAX_RECIPIENTS
(1,000, as Entra) addresses: the rest get no email (their rights are not affected)."""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from accounts.models import DirectoryGroup, User
from notifications.services import email_queue

if TYPE_CHECKING:
    from .models import RoleSettings

logger = logging.getLogger(__name__)

EVENTS = ("eligible", "active", "activation")
AUDIENCES = ("admin", "assignee", "approver")
ENTRA_EVENT = {
    "eligible": "Admin_Eligibility",
    "active": "Admin_Assignment",
    "activation": "EndUser_Assignment",
}
ENTRA_AUDIENCE = {"admin": "Admin", "assignee": "Requestor", "approver": "Approver"}
EVENT_LABELS = {
    "eligible": "Members assigned as eligible",
    "active": "Members assigned as active",
    "activation": "Eligible members activate",
}
AUDIENCE_LABELS = {
    "admin": "role assignment alert (administrators)",
    "assignee": "notification to the assignee / requester",
    "approver": "request to approve (approvers)",
}
# Entra accepts at most this many additional recipients per rule is not documented; the per-event
# cap (1,000) is, so one rule cannot hold more than that either.
MAX_ADDITIONAL = 1000


@dataclass(frozen=True)
class Rule:
    """One of Entra's nine Notification_* rules, and the three role-settings fields it is."""

    event: str
    audience: str

    @property
    def prefix(self) -> str:
        return f"notify_{self.event}_{self.audience}"

    @property
    def default_field(self) -> str:
        return f"{self.prefix}_default"

    @property
    def additional_field(self) -> str:
        return f"{self.prefix}_additional"

    @property
    def critical_field(self) -> str:
        return f"{self.prefix}_critical_only"

    @property
    def entra_id(self) -> str:
        return f"Notification_{ENTRA_AUDIENCE[self.audience]}_{ENTRA_EVENT[self.event]}"

    @property
    def label(self) -> str:
        return f"{EVENT_LABELS[self.event]}: {AUDIENCE_LABELS[self.audience]}"


RULES = tuple(Rule(event, audience) for event in EVENTS for audience in AUDIENCES)
DEFAULT_FIELDS = tuple(rule.default_field for rule in RULES)
ADDITIONAL_FIELDS = tuple(rule.additional_field for rule in RULES)
CRITICAL_FIELDS = tuple(rule.critical_field for rule in RULES)
FIELDS = tuple(
    name for rule in RULES for name in (rule.default_field, rule.additional_field, rule.critical_field)
)


def rule_for(event: str, audience: str) -> Rule:
    if event not in EVENTS or audience not in AUDIENCES:
        raise ValueError(f"No notification rule for {event} / {audience}.")
    return Rule(event, audience)


def recipients_parse(text: str) -> list[str]:
    """The addresses in an additional-recipients field (one per line; `;` and `,` separate too,
    as Entra's admin center takes them), lower-cased, first occurrence kept."""
    seen: dict[str, None] = {}
    for part in str(text or "").replace(";", "\n").replace(",", "\n").splitlines():
        address = part.strip().lower()
        if address:
            seen.setdefault(address, None)
    return list(seen)


def recipients_clean(text: str, *, field_name: str) -> str:
    """Validate an additional-recipients field; its normal form is one address per line."""
    addresses = recipients_parse(text)
    bad = []
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    if bad:
        shown = ", ".join(sorted(bad)[:5])
        raise ValidationError({field_name: f"Not an email address: {shown}."})
    if len(addresses) > MAX_ADDITIONAL:
        raise ValidationError({field_name: f"At most {MAX_ADDITIONAL} additional recipients."})
    return "\n".join(addresses)


@dataclass
class Notice:
    """One email of an event to one audience. `defaults` are the rule's default recipients;
    `critical` says whether the email asks its recipients to act (Entra's "critical emails":
    approving a request is, being told of an assignment is not). `context_for` gives the
    template context per recipient (a User, or an address of the additional recipients)."""

    audience: str
    template: str
    defaults: Iterable[Any]
    context: dict[str, Any]
    critical: bool = False
    context_for: Callable[[Any], dict[str, Any]] | None = None
    recipients: list[Any] = field(default_factory=list)


def role_notify(
    *, role_settings: "RoleSettings", event: str, notices: list[Notice], now: datetime
) -> list[Notice]:
    """Queue the event's emails as the role's matrix says (in the caller's transaction: the
    outbox sends them after commit). Notices are served in the order given, so put the ones
    that ask for action first: past the cap, later recipients get nothing. Returns the notices
    with the recipients each went to."""
    cap = settings.PIM_NOTIFICATION_MAX_RECIPIENTS
    counted: set[str] = set()
    for notice in notices:
        rule = rule_for(event, notice.audience)
        if getattr(role_settings, rule.critical_field) and not notice.critical:
            continue
        wanted: list[Any] = []
        if getattr(role_settings, rule.default_field):
            wanted += list(notice.defaults)
        wanted += recipients_parse(getattr(role_settings, rule.additional_field))
        for recipient in _unique(wanted):
            address = _address(recipient)
            if address not in counted and len(counted) >= cap:
                logger.warning(
                    "%s of %s: more than %s recipients, the rest get no email", event, role_settings.role, cap
                )
                break
            counted.add(address)
            notice.recipients.append(recipient)
        _queue(notice, now)
    return notices


def _queue(notice: Notice, now: datetime) -> None:
    if not notice.recipients:
        return
    if notice.context_for is None:
        email_queue(recipients=notice.recipients, template=notice.template, context=notice.context, now=now)
        return
    for recipient in notice.recipients:
        context = {**notice.context, **notice.context_for(recipient)}
        email_queue(recipients=[recipient], template=notice.template, context=context, now=now)


def _address(recipient: Any) -> str:
    return str(getattr(recipient, "email", recipient) or "").strip().lower()


def _unique(recipients: Iterable[Any]) -> list[Any]:
    """One per address (a person named by default and again as an address counts once; the
    User wins, so templates can greet them); people without an address are left out."""
    by_address: dict[str, Any] = {}
    for recipient in recipients:
        address = _address(recipient)
        if not address:
            continue
        if address not in by_address or (
            isinstance(by_address[address], str) and not isinstance(recipient, str)
        ):
            by_address[address] = recipient
    return list(by_address.values())


def assignee_people(principal: Any) -> list[User]:
    """The default recipients for an assignee: the user, or the group's active members."""
    if isinstance(principal, DirectoryGroup):
        return list(principal.members.filter(is_active=True).order_by("pk"))
    return [principal] if principal is not None and principal.is_active else []


def assignment_created_notify(
    *, role_settings: "RoleSettings", assignment: Any, kind: str, actor: User | None, now: datetime
) -> None:
    """Rules 9-10 (eligible) and 12-13 (active): the assignee (or the group's members) and the
    administrators hear of a new assignment. Neither email asks for action: critical-only
    rules send nothing."""
    from .selectors import pim_administrators

    context = {"assignment": assignment, "kind": kind, "actor": actor}
    role_notify(
        role_settings=role_settings,
        event=kind,
        notices=[
            Notice("assignee", "assignment-created", assignee_people(assignment.principal), context),
            Notice("admin", "assignment-alert", pim_administrators(at=now).order_by("pk"), context),
        ],
        now=now,
    )


def assignment_ending_notify(
    *, role_settings: "RoleSettings", assignment: Any, kind: str, days: int, now: datetime
) -> None:
    """Expiry notices (14 days, 1 day, ended; research §2.5): to the assignee (the user, or
    every member of the group) and to the administrators, through the assignment kind's rules.
    Asking someone to extend is not critical (Entra's own example)."""
    from .selectors import pim_administrators

    context = {"assignment": assignment, "kind": kind, "days": days}
    role_notify(
        role_settings=role_settings,
        event=kind,
        notices=[
            Notice("assignee", "assignment-ending", assignee_people(assignment.principal), context),
            Notice("admin", "assignment-ending-admin", pim_administrators(at=now).order_by("pk"), context),
        ],
        now=now,
    )
