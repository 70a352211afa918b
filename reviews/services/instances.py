"""Review runs: starting them (in bulk: items, reviewers, recommendations) and reminding
reviewers."""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from notifications.services import email_queue
from roles.selectors import pim_administrators

from ..models import ReviewDefinition, ReviewerAssignment, ReviewInstance
from ..recurrence import latest_due_occurrence, occurrence_start
from .snapshot import items_insert, links_insert


def review_instances_start_due(*, now: datetime | None = None) -> list[ReviewInstance]:
    """Start the current run of every enabled definition that has none yet (idempotent: one
    instance per occurrence, enforced by a unique constraint). Runs whose window passed while
    the portal was down are skipped rather than started late and applied blindly."""
    now = now or timezone.now()
    started = []
    for definition in ReviewDefinition.objects.filter(enabled=True):
        k = latest_due_occurrence(start=definition.start_date, recurrence=definition.recurrence, now=now)
        if k is None or (definition.max_runs is not None and k >= definition.max_runs):
            continue  # not started yet, or the series is over
        starts_at = occurrence_start(start=definition.start_date, recurrence=definition.recurrence, k=k)
        if starts_at + timedelta(days=definition.duration_days) <= now:
            continue
        if definition.end_date is not None and starts_at.date() > definition.end_date:
            continue  # the series ended
        if ReviewInstance.objects.filter(definition=definition, occurrence=k).exists():
            continue
        instance = review_instance_start(definition=definition, occurrence=k, starts_at=starts_at, now=now)
        if instance is not None:
            started.append(instance)
    return started


def review_instance_start(
    *, definition: ReviewDefinition, occurrence: int, starts_at: datetime, now: datetime
) -> ReviewInstance | None:
    """Snapshot the assignments in scope as items, set-based (reviews.services.snapshot: a few
    INSERT ... SELECT statements whatever the size), in one transaction with the audit event
    and the reviewers' emails (one each, sent as one broker message); None if another run won
    the race."""
    with transaction.atomic():
        definition = ReviewDefinition.objects.select_for_update().get(pk=definition.pk)
        if ReviewInstance.objects.filter(definition=definition, occurrence=occurrence).exists():
            return None
        instance = ReviewInstance.objects.create(
            definition=definition,
            occurrence=occurrence,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(days=definition.duration_days),
        )
        item_count = items_insert(definition=definition, instance=instance, now=now)
        if item_count:
            links_insert(
                definition=definition, instance=instance, fallback=_fallback_reviewers(definition, now)
            )
        instance.item_count = item_count
        instance.save(update_fields=["item_count"])
        audit_record(
            action="review.started",
            target=instance,
            details={"definition": definition.name, "items": item_count, "ends_at": instance.ends_at},
            at=now,
        )
        reviewer_ids = ReviewerAssignment.objects.filter(item__instance=instance).values("reviewer_id")
        email_queue(
            recipients=User.objects.filter(pk__in=reviewer_ids, is_active=True),
            template="review-started",
            context={"instance": instance, "definition": definition},
            now=now,
        )
    return instance


def _fallback_reviewers(definition: ReviewDefinition, now: datetime) -> list[int]:
    """Who reviews an item the rule left without a reviewer: the definition's fallback
    reviewer if active, else the PIM Administrators (in either case, not its holders)."""
    fallback = definition.fallback_reviewer_id
    if fallback is not None and User.objects.filter(pk=fallback, is_active=True).exists():
        return [fallback]
    return [user.pk for user in pim_administrators(at=now)]


def review_reminders_send_due(*, now: datetime | None = None) -> int:
    """Once per run, halfway through, remind reviewers who still have undecided items."""
    now = now or timezone.now()
    sent = 0
    candidates = ReviewInstance.objects.filter(
        status=ReviewInstance.Status.ACTIVE,
        reminder_sent_at__isnull=True,
        definition__reminders=True,
        ends_at__gt=now,
    ).select_related("definition")
    for instance in candidates:
        if now < instance.starts_at + (instance.ends_at - instance.starts_at) / 2:
            continue
        with transaction.atomic():
            if not ReviewInstance.objects.filter(pk=instance.pk, reminder_sent_at__isnull=True).update(
                reminder_sent_at=now
            ):
                continue
            reviewer_ids = ReviewerAssignment.objects.filter(
                item__instance=instance, item__decision=""
            ).values("reviewer_id")
            email_queue(
                recipients=User.objects.filter(pk__in=reviewer_ids, is_active=True),
                template="review-reminder",
                context={"instance": instance, "definition": instance.definition},
                now=now,
            )
        sent += 1
    return sent
