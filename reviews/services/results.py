"""Ending runs and applying their results (a denial removes the assignment)."""

from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from notifications.services import Attachment, email_queue
from roles.models import ActiveAssignment, EligibleAssignment
from roles.selectors import pim_administrators
from roles.services import active_remove, eligible_remove

from .. import reports
from ..models import ReviewDefinition, ReviewInstance, ReviewItem
from .shared import Decision, Outcome, ReviewError, _require_perm


def review_instances_close_due(*, now: datetime | None = None) -> int:
    """Close runs whose end has passed (claimed by a conditional update) and apply those set
    to apply automatically."""
    now = now or timezone.now()
    closed = 0
    for instance_id in ReviewInstance.objects.filter(
        status=ReviewInstance.Status.ACTIVE, ends_at__lte=now
    ).values_list("pk", flat=True):
        with transaction.atomic():
            if not ReviewInstance.objects.filter(pk=instance_id, status=ReviewInstance.Status.ACTIVE).update(
                status=ReviewInstance.Status.CLOSED, closed_at=now
            ):
                continue  # another run closed it
            instance = ReviewInstance.objects.select_related("definition").get(pk=instance_id)
            audit_record(
                action="review.closed", target=instance, details={"items": instance.item_count}, at=now
            )
            if not instance.definition.auto_apply:
                review_report_email(instance=instance, now=now)  # else once the results are applied
        closed += 1
        if instance.definition.auto_apply:
            review_instance_apply(actor=None, instance=instance, now=now)
    return closed


def review_instance_end_early(
    *, actor: User, instance: ReviewInstance, now: datetime | None = None
) -> ReviewInstance:
    """An administrator stops a run before its end; applied at once if the definition applies
    results automatically (else an administrator applies it with review_instance_apply)."""
    now = now or timezone.now()
    _require_perm(actor, "reviews.change_reviewdefinition", attempted="review_instance_end_early")
    with transaction.atomic():
        if not ReviewInstance.objects.filter(pk=instance.pk, status=ReviewInstance.Status.ACTIVE).update(
            status=ReviewInstance.Status.CLOSED, closed_at=now, ends_at=now
        ):
            raise ReviewError("This review is not running.")
        instance.refresh_from_db()
        audit_record(action="review.ended_early", actor=actor, target=instance, at=now)
        if not instance.definition.auto_apply:
            review_report_email(instance=instance, now=now)
    if instance.definition.auto_apply:  # as review_instances_close_due would at the end
        review_instance_apply(actor=actor, instance=instance, now=now)
        instance.refresh_from_db()
    return instance


def review_instance_apply(
    *, actor: User | None, instance: ReviewInstance, now: datetime | None = None
) -> dict[str, int]:
    """Carry out the results: deny (or an undecided item under `remove`, or a deny
    recommendation under `recommendation`) removes the assignment. Idempotent: applied items
    are skipped and a finished instance is not applied again."""
    now = now or timezone.now()
    if actor is not None:
        _require_perm(actor, "reviews.change_reviewdefinition", attempted="review_instance_apply")
    instance = ReviewInstance.objects.select_related("definition").get(pk=instance.pk)
    if instance.status == ReviewInstance.Status.ACTIVE:
        raise ReviewError("End the review before applying it.")
    if instance.status == ReviewInstance.Status.APPLIED:
        return {}
    counts: dict[str, int] = {}
    pending = instance.items.filter(applied_at__isnull=True).select_related(
        "eligible", "active", "role", "user"
    )
    for item in pending.iterator(chunk_size=500):
        outcome = _apply_item(item, instance.definition, actor, now)
        counts[outcome] = counts.get(outcome, 0) + 1
    with transaction.atomic():
        if ReviewInstance.objects.filter(pk=instance.pk, status=ReviewInstance.Status.CLOSED).update(
            status=ReviewInstance.Status.APPLIED, applied_at=now
        ):
            audit_record(
                action="review.applied", actor=actor, target=instance, details={"outcomes": counts}, at=now
            )
            review_report_email(instance=instance, now=now)
    return counts


def review_report_owners(definition: ReviewDefinition, *, now: datetime) -> list[User]:
    """Who gets a run's report: the definition's owners, else its creator, else the PIM
    Administrators (active accounts only)."""
    owners = list(definition.owners.filter(is_active=True))
    if owners:
        return owners
    if definition.created_by is not None and definition.created_by.is_active:
        return [definition.created_by]
    return list(pim_administrators(at=now))


def review_report_email(*, instance: ReviewInstance, now: datetime) -> bool:
    """Email the owners that the run has ended, with its report (XLSX) attached: once per run
    (claimed by a conditional update), in the caller's transaction, sent after commit."""
    with transaction.atomic():
        if not ReviewInstance.objects.filter(pk=instance.pk, report_emailed_at__isnull=True).update(
            report_emailed_at=now
        ):
            return False
        instance = ReviewInstance.objects.select_related("definition__created_by").get(pk=instance.pk)
        owners = review_report_owners(instance.definition, now=now)
        report = Attachment(
            filename=reports.report_filename(instance, "xlsx"),
            content=b"".join(reports.xlsx_stream(instance)),
            content_type=reports.XLSX_TYPE,
        )
        summary = reports.report_summary(instance)
        email_queue(
            recipients=owners,
            template="review-completed",
            context={"instance": instance, "definition": instance.definition, "summary": summary},
            attachments=[report],
            now=now,
        )
        audit_record(
            action="review.report_emailed",
            target=instance,
            details={"to": sorted(owner.username for owner in owners), "file": report.filename},
            at=now,
        )
    return True


def effective_decision(item: ReviewItem, definition: ReviewDefinition) -> str:
    """What applying does with the item: the reviewer's decision, else the default."""
    if item.decision:
        return item.decision
    default = definition.default_decision
    if default == ReviewDefinition.DefaultDecision.REMOVE:
        return Decision.DENY
    if default == ReviewDefinition.DefaultDecision.APPROVE:
        return Decision.APPROVE
    if default == ReviewDefinition.DefaultDecision.RECOMMENDATION and item.recommendation:
        return item.recommendation
    return ""


def _apply_item(item: ReviewItem, definition: ReviewDefinition, actor: User | None, now: datetime) -> str:
    with transaction.atomic():
        item = (
            ReviewItem.objects.select_for_update(of=("self",))
            .select_related("eligible", "active", "role", "decided_by", "instance__definition")
            .get(pk=item.pk)
        )
        if item.applied_at is not None:
            return item.outcome
        decision = effective_decision(item, definition)
        outcome: str = Outcome.UNCHANGED
        detail = ""
        if decision == Decision.APPROVE:
            outcome = Outcome.KEPT
        elif decision == Decision.DENY:
            outcome, detail = _remove(item, definition, actor, now)
        item.applied_at, item.outcome, item.outcome_detail = now, outcome, detail[:300]
        item.save(update_fields=["applied_at", "outcome", "outcome_detail"])
        if outcome == Outcome.REMOVED and item.user_id:
            email_queue(recipients=[item.user], template="access-removed", context={"item": item}, now=now)
    return outcome


def _removal_reason(item: ReviewItem, definition: ReviewDefinition) -> str:
    """Why the assignment goes, for the audit log: the reviewer's denial and justification, or
    the review's rule for items nobody decided."""
    review = f'access review "{definition.name}"'
    if item.decision == Decision.DENY:
        who = item.decided_by.label if item.decided_by is not None else "a reviewer"
        return f"Denied in {review} by {who}: {item.justification or 'no justification'}"
    if definition.default_decision == ReviewDefinition.DefaultDecision.RECOMMENDATION:
        return f"Not decided in {review}; removed on the recommendation: {item.recommendation_reason}"
    return f"Not decided in {review}, whose setting removes undecided access"


def _remove(
    item: ReviewItem, definition: ReviewDefinition, actor: User | None, now: datetime
) -> tuple[str, str]:
    assignment = item.assignment
    if not assignment.is_current(now) and not (assignment.starts_at > now and assignment.ended_at is None):
        return Outcome.ALREADY_ENDED, ""
    reason = _removal_reason(item, definition)
    try:
        with transaction.atomic():
            if isinstance(assignment, EligibleAssignment):  # assignment_type eligible
                eligible_remove(
                    actor=actor,
                    assignment=assignment,
                    reason=reason[:2000],
                    end_reason=EligibleAssignment.EndReason.REVIEW,
                    now=now,
                )
            else:
                active_remove(
                    actor=actor,
                    assignment=assignment,
                    reason=reason[:2000],
                    end_reason=ActiveAssignment.EndReason.REVIEW,
                    now=now,
                )
    except ValidationError as error:  # e.g. anti-lockout: recorded, never half-applied
        return Outcome.REFUSED, "; ".join(error.messages)
    except PermissionDenied as error:  # the applying administrator may not manage this role
        return Outcome.REFUSED, str(error)
    return Outcome.REMOVED, ""
