"""Reviewers' decisions on items, one at a time or in bulk."""

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
    """Decide several items at once (bulk approve / deny); one audit event per item."""
    now = now or timezone.now()
    if decision not in Decision.values:
        raise ReviewError({"decision": "Choose approve or deny."})
    if not reviewer.is_active:
        raise PermissionDenied("A deactivated account cannot review.")
    justification = clean_text(justification, field="justification")
    with transaction.atomic():
        locked = list(
            ReviewItem.objects.select_for_update(of=("self",))
            .select_related("instance__definition", "role")
            .filter(pk__in=[item.pk for item in items], reviewer_links__reviewer=reviewer)
            .order_by("pk")
        )
        if len(locked) != len({item.pk for item in items}):
            raise PermissionDenied("You are not a reviewer of every selected item.")
        entries = []
        for item in locked:
            instance = item.instance
            if instance.status != ReviewInstance.Status.ACTIVE or now >= instance.ends_at:
                raise ReviewError("This review has ended; decisions can no longer be changed.")
            if instance.definition.justification_required and not justification:
                raise ReviewError({"justification": "A justification is required for this review."})
            before = item.decision
            item.decision, item.justification, item.decided_by, item.decided_at = (
                decision,
                justification,
                reviewer,
                now,
            )
            entries.append(
                AuditEntry(
                    action="review.decided",
                    actor=reviewer,
                    target=item,
                    role=item.role,
                    scope=item.scope,
                    details={
                        "decision": decision,
                        "before": before,
                        "justification": justification,
                        "principal": item.principal_label,
                        "instance": str(instance.pk),
                    },
                )
            )
        ReviewItem.objects.bulk_update(locked, ["decision", "justification", "decided_by", "decided_at"])
        audit_record_many(entries=entries, at=now)
    return locked
