"""Reviewers' decisions on items: one at a time or in bulk, "Accept recommendations", and
taking a decision back (reset) before the run ends. Every change is audited per item."""

import uuid
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import AuditEntry, audit_record_many
from common.text import clean_text

from ..models import ReviewInstance, ReviewItem
from .shared import Decision, ReviewError


def review_item_decide(
    *, reviewer: User, item: ReviewItem, decision: str, justification: str = "", now: datetime | None = None
) -> ReviewItem:
    """Record (or change, until the run ends) a reviewer's decision on one item."""
    return review_items_decide(
        reviewer=reviewer, items=[item], decision=decision, justification=justification, now=now
    )[0]


def review_items_decide(
    *,
    reviewer: User,
    items: list[ReviewItem],
    decision: str,
    justification: str = "",
    now: datetime | None = None,
) -> list[ReviewItem]:
    """Decide several items at once (bulk approve / deny / don't know); one audit event per
    item."""
    now = now or timezone.now()
    if decision not in Decision.values:
        raise ReviewError({"decision": "Choose approve, deny or don't know."})
    justification = clean_text(justification, field="justification")
    with transaction.atomic():
        locked = _lock_open_items(reviewer, [item.pk for item in items], now)
        entries = []
        for item in locked:
            if item.instance.definition.justification_required and not justification:
                raise ReviewError({"justification": "A justification is required for this review."})
            entries.append(_entry("review.decided", reviewer, item, decision, justification))
            _set(item, decision, justification, reviewer, now, from_recommendation=False)
        ReviewItem.objects.bulk_update(locked, DECISION_FIELDS)
        audit_record_many(entries=entries, at=now)
    return locked


def review_items_accept_recommendations(
    *, reviewer: User, instance_id: uuid.UUID | None = None, now: datetime | None = None
) -> list[ReviewItem]:
    """Take the recommendation as the decision on every item the reviewer has not decided yet
    (in one run, or in every open run); decisions already made are left alone (as in Entra).
    The recommendation's reason is the justification; each item is audited as an accepted
    recommendation, not as the reviewer's own call."""
    now = now or timezone.now()
    undecided = ReviewItem.objects.filter(
        reviewer_links__reviewer=reviewer,
        decision="",
        instance__status=ReviewInstance.Status.ACTIVE,
        instance__ends_at__gt=now,
        instance__definition__recommendations=True,
    ).exclude(recommendation="")
    if instance_id is not None:
        undecided = undecided.filter(instance_id=instance_id)
    with transaction.atomic():
        locked = [
            item
            for item in _lock_open_items(reviewer, list(undecided.values_list("pk", flat=True)), now)
            if not item.decision  # decided meanwhile by another reviewer: theirs stands
        ]
        entries = []
        for item in locked:
            justification = f"Accepted the recommendation: {item.recommendation_reason}"[:2000]
            entries.append(
                _entry("review.recommendation_accepted", reviewer, item, item.recommendation, justification)
            )
            _set(item, item.recommendation, justification, reviewer, now, from_recommendation=True)
        ReviewItem.objects.bulk_update(locked, DECISION_FIELDS)
        audit_record_many(entries=entries, at=now)
    return locked


def review_item_reset(*, reviewer: User, item: ReviewItem, now: datetime | None = None) -> ReviewItem:
    """Take a decision back while the run is open: the item is undecided again (and the
    definition's rule for items nobody decided applies unless someone decides it)."""
    now = now or timezone.now()
    with transaction.atomic():
        [locked] = _lock_open_items(reviewer, [item.pk], now)
        if not locked.decision:
            raise ReviewError("This item has no decision to reset.")
        entry = _entry("review.decision_reset", reviewer, locked, "", "")
        _set(locked, "", "", None, None, from_recommendation=False)
        locked.save(update_fields=DECISION_FIELDS)
        audit_record_many(entries=[entry], at=now)
    return locked


DECISION_FIELDS = ["decision", "justification", "decided_by", "decided_at", "from_recommendation"]


def _lock_open_items(reviewer: User, pks: list[uuid.UUID], now: datetime) -> list[ReviewItem]:
    """The items, locked, if the reviewer reviews every one of them and their runs are open."""
    if not reviewer.is_active:
        raise PermissionDenied("A deactivated account cannot review.")
    locked = list(
        ReviewItem.objects.select_for_update(of=("self",))
        .select_related("instance__definition", "role")
        .filter(pk__in=pks, reviewer_links__reviewer=reviewer)
        .order_by("pk")
    )
    if len(locked) != len(set(pks)):
        raise PermissionDenied("You are not a reviewer of every selected item.")
    for item in locked:
        if item.instance.status != ReviewInstance.Status.ACTIVE or now >= item.instance.ends_at:
            raise ReviewError("This review has ended; decisions can no longer be changed.")
    return locked


def _set(
    item: ReviewItem,
    decision: str,
    justification: str,
    reviewer: User | None,
    now: datetime | None,
    *,
    from_recommendation: bool,
) -> None:
    item.decision, item.justification, item.decided_by, item.decided_at = (
        decision,
        justification,
        reviewer,
        now,
    )
    item.from_recommendation = from_recommendation


def _entry(action: str, reviewer: User, item: ReviewItem, decision: str, justification: str) -> AuditEntry:
    details = {
        "decision": decision,
        "before": item.decision,
        "justification": justification,
        "principal": item.principal_label,
        "instance": str(item.instance_id),
    }
    if action == "review.recommendation_accepted":
        details["recommendation_reason"] = item.recommendation_reason
    return AuditEntry(
        action=action, actor=reviewer, target=item, role=item.role, scope=item.scope, details=details
    )
