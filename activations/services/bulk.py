"""Several at once: activate several roles with one justification, ticket and MFA check, and
decide several requests with one reason and one step-up.

Nothing here is a rule of its own: each role and each request goes through the single-item
service (activation_request, activation_approve, activation_deny), which checks its own
policy, writes its own audit event and queues its own emails. These functions only say how
the items share one input and how their outcomes are reported:

- activations_request_many and activations_decide_each: every item on its own (its own
  transaction); one refused item does not stop the others, each outcome says why;
- activations_decide_all: all or nothing, in one transaction (the API): if any request is no
  longer open for this approver, nothing is decided and the error names them all.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from common.db import retry_on_deadlock
from common.text import clean_text
from roles.models import EligibleAssignment, RoleSettings

from ..models import ActivationRequest, Approval, TransitionNotAllowed
from .decisions import activation_approve, activation_decider_check, activation_deny
from .requests import activation_request
from .transitions import ActivationConflict, _lock_person

# What one item's refusal can be: reported with the item, never stopping the others.
ITEM_REFUSALS = (ValidationError, PermissionDenied, TransitionNotAllowed)
# At most this many items per call (a page of the inbox is 25; the API's bulk input the same).
MAX_BULK_ITEMS = 100


@dataclass(frozen=True)
class ActivationChoice:
    """One role to activate among several: the eligibility and how long (the justification,
    ticket and MFA check are shared)."""

    eligible: EligibleAssignment
    duration: timedelta
    scope: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one item: the request made or decided, or why it was refused."""

    key: object  # the eligibility (activating) or the request (deciding)
    request: ActivationRequest | None = None
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


class DecisionsConflict(ActivationConflict):
    """An all-or-nothing decision found requests that are no longer open for the approver
    (decided meanwhile, timed out, canceled, or already approved by them): nothing changed."""

    def __init__(self, changed: dict[uuid.UUID, str]) -> None:
        self.changed = changed
        super().__init__(
            f"{len(changed)} of the requests changed meanwhile; nothing was decided: "
            + "; ".join(f"{pk}: {why}" for pk, why in changed.items())
        )


def _messages(error: Exception) -> tuple[str, ...]:
    if isinstance(error, ValidationError):
        return tuple(error.messages)
    return (str(error) or "That is not allowed.",)


def _check_count(count: int, what: str) -> None:
    if count < 1:
        raise ValidationError(f"Choose at least one {what}.")
    if count > MAX_BULK_ITEMS:
        raise ValidationError(f"Choose at most {MAX_BULK_ITEMS} {what}s at once.")


# --- Activating several roles ----------------------------------------------------------------


def activations_request_many(
    *,
    requester: User,
    choices: Sequence[ActivationChoice],
    justification: str = "",
    ticket_number: str = "",
    ticket_system: str = "",
    mfa_verified_at: datetime | None = None,
    mfa_factor: str | None = None,
    now: datetime | None = None,
) -> list[Outcome]:
    """Activate several eligible roles with one justification, ticket and MFA check. Each role
    is asked for through activation_request with its own rules (its own request, audit event
    and approvers); a role refused is reported with its reason and the others go ahead."""
    _check_count(len(choices), "role")
    if len({choice.eligible.pk for choice in choices}) != len(choices):
        raise ValidationError("Each role can be chosen once.")
    now = now or timezone.now()
    outcomes = []
    for choice in choices:
        try:
            request = activation_request(
                requester=requester,
                eligible=choice.eligible,
                duration=choice.duration,
                scope=choice.scope,
                justification=justification,
                ticket_number=ticket_number,
                ticket_system=ticket_system,
                mfa_verified_at=mfa_verified_at,
                mfa_factor=mfa_factor,
                now=now,
            )
        except ITEM_REFUSALS as error:
            outcomes.append(Outcome(key=choice.eligible, errors=_messages(error)))
        else:
            outcomes.append(Outcome(key=choice.eligible, request=request))
    return outcomes


# --- Deciding several requests ---------------------------------------------------------------


def _decide(
    decision: str,
    approver: User,
    request: ActivationRequest,
    reason: str,
    mfa_verified_at: datetime | None,
    mfa_factor: str | None,
    now: datetime,
) -> ActivationRequest:
    service = activation_approve if decision == Approval.Decision.APPROVE else activation_deny
    return service(
        approver=approver,
        request=request,
        reason=reason,
        mfa_verified_at=mfa_verified_at,
        mfa_factor=mfa_factor,
        now=now,
    )


def _clean_decision(decision: str, reason: str) -> str:
    if decision not in Approval.Decision.values:
        raise ValidationError({"decision": "Choose Approve or Deny."})
    return clean_text(reason, field="reason", required=decision == Approval.Decision.DENY)


def activations_decide_each(
    *,
    approver: User,
    requests: Sequence[ActivationRequest],
    decision: str,
    reason: str = "",
    mfa_verified_at: datetime | None,
    mfa_factor: str | None = None,
    now: datetime | None = None,
) -> list[Outcome]:
    """Approve or deny several requests with one reason and one step-up, each on its own
    (activation_approve / activation_deny): one refused (decided meanwhile, not this
    approver's, timed out) is reported with its reason, the others are decided."""
    _check_count(len(requests), "request")
    reason = _clean_decision(decision, reason)
    now = now or timezone.now()
    outcomes = []
    for request in requests:
        try:
            decided = _decide(decision, approver, request, reason, mfa_verified_at, mfa_factor, now)
        except ITEM_REFUSALS as error:
            outcomes.append(Outcome(key=request, errors=_messages(error)))
        else:
            outcomes.append(Outcome(key=request, request=decided))
    return outcomes


def activations_decide_check(
    *, approver: User, requests: Sequence[ActivationRequest]
) -> dict[uuid.UUID, str]:
    """The requests this approver may never decide (their own, or not their approver), with
    why; each refusal audited (activation_decider_check). Call it outside any transaction."""
    refused = {}
    for request in requests:
        try:
            activation_decider_check(approver=approver, request=request)
        except PermissionDenied as error:
            refused[request.pk] = str(error)
    return refused


@retry_on_deadlock
def activations_decide_all(
    *,
    approver: User,
    requests: Sequence[ActivationRequest],
    decision: str,
    reason: str = "",
    mfa_verified_at: datetime | None,
    mfa_factor: str | None = None,
    now: datetime | None = None,
) -> list[ActivationRequest]:
    """Approve or deny several requests with one reason and one step-up: all of them, or none.

    Raises PermissionDenied if any is not the approver's to decide, and DecisionsConflict
    naming every request that is no longer open for them (decided meanwhile, timed out,
    canceled): nothing is decided then. Run activations_decide_check first, outside any
    transaction, so those refusals are audited."""
    _check_count(len(requests), "request")
    reason = _clean_decision(decision, reason)
    now = now or timezone.now()
    ordered = sorted(requests, key=lambda request: request.pk)
    with transaction.atomic():
        _lock_bases([request.pk for request in ordered])
        changed: dict[uuid.UUID, str] = {}
        decided = []
        for request in ordered:
            try:
                with transaction.atomic():  # a savepoint: a refused item leaves nothing behind
                    decided.append(
                        _decide(decision, approver, request, reason, mfa_verified_at, mfa_factor, now)
                    )
            except PermissionDenied:
                raise
            except ITEM_REFUSALS as error:
                if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
                    raise  # about the input (the step-up, the reason): the same for every item
                changed[request.pk] = " ".join(_messages(error))
        if changed:
            raise DecisionsConflict(changed)  # rolls the decisions made so far back
    position = {request.pk: index for index, request in enumerate(requests)}
    return sorted(decided, key=lambda request: position[request.pk])


def _lock_bases(pks: Sequence[uuid.UUID]) -> None:
    """Lock what every request rests on in the lock order, all requesters first, then all
    settings, then all eligibilities (as _lock_basis does for one), before any request: the
    single-request services then find their locks already held."""
    rows = list(
        ActivationRequest.objects.filter(pk__in=pks).values_list("requester_id", "role_id", "eligible_id")
    )
    for requester_id in sorted({row[0] for row in rows}):
        _lock_person(requester_id)
    role_ids = sorted({row[1] for row in rows})
    list(
        RoleSettings.objects.select_for_update()
        .filter(role_id__in=role_ids)
        .order_by("role_id")
        .values_list("pk")
    )
    eligible_ids = sorted({row[2] for row in rows})
    list(
        EligibleAssignment.objects.select_for_update()
        .filter(pk__in=eligible_ids)
        .order_by("pk")
        .values_list("pk")
    )
    list(ActivationRequest.objects.select_for_update().filter(pk__in=pks).order_by("pk").values_list("pk"))
