"""Proposing: storing a pending change, auditing it and asking the PIM Administrators who may
decide it (everyone but the proposer and the people it would give access to)."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from notifications.services import email_queue

from ..models import PendingChange
from ..selectors import pim_administrators
from .display import pending_change_rows
from .payload import _jsonable, _principal

Kind = PendingChange.Kind
Status = PendingChange.Status


def _new_change(kind, actor, role, payload, before, *, now=None) -> PendingChange:
    now = now or timezone.now()
    return PendingChange(
        kind=kind,
        role=role,
        payload=payload,
        before=_jsonable(before),
        proposer=actor,
        status=Status.PENDING,
        created_at=now,
        decide_by=now + timedelta(hours=settings.PIM_TWO_PERSON_DECIDE_HOURS),
    )


def _propose(change: PendingChange, *, details: dict) -> PendingChange:
    """Store the change, audit it and ask every other PIM Administrator (in the caller's
    transaction). Refused if nobody else could approve it."""
    deciders = pending_change_deciders(change)
    if not deciders:
        raise ValidationError(
            "This change needs a second PIM Administrator's approval (the two-person rule), and "
            "there is no other PIM Administrator: make someone else eligible for PIM Administrator first."
        )
    with transaction.atomic():
        change.save()
        rows = pending_change_rows(change)
        audit_record(
            action="pending_change.proposed",
            actor=change.proposer,
            target=change,
            role=change.role,
            scope=change.payload.get("scope", ""),
            details={
                "kind": change.kind,
                "proposed_by": change.proposer.label,
                "changes": {row["field"]: {"before": row["now"], "after": row["proposed"]} for row in rows},
                "decide_by": change.decide_by,
                **details,
            },
            at=change.created_at,
        )
        for decider in deciders:
            email_queue(
                recipients=[decider],
                template="pending-change-request",
                now=change.created_at,
                context={"change": change, "rows": rows, "link": _link(change)},
            )
    return change


def pending_change_deciders(change: PendingChange) -> list[User]:
    """Who is asked to decide: the PIM Administrators (eligible or active) other than the
    proposer and anyone the change would give access to."""
    excluded = {change.proposer_id} | change_beneficiary_ids(change)
    return [user for user in pim_administrators() if user.pk not in excluded]


def _link(change: PendingChange) -> str:
    return f"{settings.PIM_BASE_URL}{change.get_absolute_url()}"


def _beneficiary_ids(principal) -> set:
    """Who an assignment to the principal gives access to: the user, or a group's members."""
    if isinstance(principal, User):
        return {principal.pk}
    return set(principal.members.values_list("pk", flat=True))


def change_beneficiary_ids(change: PendingChange) -> set:
    if change.kind not in (Kind.SELF_ELIGIBLE, Kind.SELF_ACTIVE):
        return set()
    principal = _principal(change.payload["principal"])
    return _beneficiary_ids(principal) if principal is not None else set()
