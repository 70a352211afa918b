"""Review runs: starting them (in bulk: items, reviewers, recommendations) and reminding
reviewers."""

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import DirectoryGroup, User, latest_sign_in
from audit.services import audit_record
from common.db import bulk_insert
from notifications.services import email_queue
from roles.models import ActiveAssignment, EligibleAssignment, Role
from roles.selectors import pim_administrators

from ..models import ReviewDefinition, ReviewerAssignment, ReviewInstance, ReviewItem
from ..recurrence import latest_due_occurrence, occurrence_start
from .shared import Decision

BULK_BATCH = 5000


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
    """Snapshot the assignments in scope as items, in bulk; None if another run won the race."""
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
        items, links = _snapshot_items(definition, instance, now)
        # COPY on PostgreSQL (no SQL compiled per row); the links' items have their ids already
        bulk_insert(ReviewItem, items, batch_size=BULK_BATCH)
        bulk_insert(ReviewerAssignment, links, batch_size=BULK_BATCH)
        instance.item_count = len(items)
        instance.save(update_fields=["item_count"])
        audit_record(
            action="review.started",
            target=instance,
            details={"definition": definition.name, "items": len(items), "ends_at": instance.ends_at},
            at=now,
        )
        reviewer_ids = {link.reviewer_id for link in links}
        email_queue(
            recipients=User.objects.filter(pk__in=reviewer_ids, is_active=True),
            template="review-started",
            context={"instance": instance, "definition": definition},
            now=now,
        )
    return instance


def _snapshot_items(
    definition: ReviewDefinition, instance: ReviewInstance, now: datetime
) -> tuple[list[ReviewItem], list[ReviewerAssignment]]:
    role_ids = list(definition.roles.values_list("pk", flat=True))
    rows = []
    fields = (
        "pk",
        "user_id",
        "group_id",
        "role_id",
        "scope",
        "user__manager_id",
        "user__last_sign_in_at",
        "user__directory_sign_in_at",
        "user__directory_non_interactive_sign_in_at",
        "user__username",
        "user__display_name",
        "group__name",
    )
    if definition.review_eligible:
        eligible = EligibleAssignment.objects.filter(role_id__in=role_ids).current(now)
        rows += [("eligible", row) for row in eligible.values_list(*fields)]
    if definition.review_active:
        # Direct (standing) active assignments; activations are short-lived and end by themselves.
        active = (
            ActiveAssignment.objects.filter(role_id__in=role_ids)
            .current(now)
            .exclude(origin=ActiveAssignment.Origin.ACTIVATION)
        )
        rows += [("active", row) for row in active.values_list(*fields)]
    owners = _owners_by_role(role_ids)
    named = list(definition.named_reviewers.filter(is_active=True).values_list("pk", flat=True))
    active_user_ids = set(User.objects.filter(is_active=True).values_list("pk", flat=True)) if rows else set()
    members = _members_by_group({row[2] for _, row in rows if row[2]})
    fallback = [definition.fallback_reviewer_id] if definition.fallback_reviewer_id in active_user_ids else []
    if not fallback:
        fallback = [user.pk for user in pim_administrators(at=now)]
    last_activation = (
        _last_activations(role_ids, definition.inactivity_days, now) if definition.recommendations else {}
    )
    items, links = [], []
    for kind, (
        pk,
        user_id,
        group_id,
        role_id,
        scope,
        manager_id,
        portal_sign_in,
        directory_sign_in,
        non_interactive_sign_in,
        username,
        display,
        group_name,
    ) in rows:
        last_sign_in, last_sign_in_source = latest_sign_in(
            portal_sign_in, directory_sign_in, non_interactive_sign_in
        )
        item = ReviewItem(
            instance=instance,
            assignment_type=kind,
            eligible_id=pk if kind == "eligible" else None,
            active_id=pk if kind == "active" else None,
            user_id=user_id,
            group_id=group_id,
            principal_label=(f"{display} <{username}>" if display else username)
            if user_id
            else f"group {group_name}",
            role_id=role_id,
            scope=scope,
            last_sign_in_at=last_sign_in,
            last_sign_in_source=last_sign_in_source,
            last_activation_at=last_activation.get((user_id, role_id)),
        )
        if definition.recommendations and user_id:
            item.recommendation, item.recommendation_reason = _recommend(
                kind, item, definition.inactivity_days, now
            )
        candidates = _reviewers_for(definition, user_id, manager_id, owners.get(role_id, []), named)
        # Nobody reviews their own access (directly or through a group) unless the review is
        # a self-review of a user's own assignment.
        holders = {user_id} if user_id else members.get(group_id, set())
        self_review = definition.reviewer_type == ReviewDefinition.Reviewers.SELF and user_id
        reviewers = [r for r in candidates if r in active_user_ids and (self_review or r not in holders)]
        if not reviewers:
            reviewers = [r for r in fallback if r not in holders]
        items.append(item)
        links += [
            ReviewerAssignment(item=item, reviewer_id=reviewer) for reviewer in dict.fromkeys(reviewers)
        ]
    return items, links


def _owners_by_role(role_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[int]]:
    owners: dict[uuid.UUID, list[int]] = {}
    for role_id, user_id in Role.owners.through.objects.filter(role_id__in=role_ids).values_list(
        "role_id", "user_id"
    ):
        owners.setdefault(role_id, []).append(user_id)
    return owners


def _members_by_group(group_ids: set[int]) -> dict[int, set[int]]:
    """Members of the groups under review: one query (they may not review the group)."""
    members: dict[int, set[int]] = {}
    if not group_ids:
        return members
    through = DirectoryGroup.members.through.objects.filter(directorygroup_id__in=group_ids)
    for group_id, user_id in through.values_list("directorygroup_id", "user_id"):
        members.setdefault(group_id, set()).add(user_id)
    return members


def _last_activations(
    role_ids: list[uuid.UUID], inactivity_days: int, now: datetime
) -> dict[tuple[int, uuid.UUID], datetime]:
    """The last activation start per (user, role): one grouped query, for recommendations."""
    since = now - timedelta(days=max(inactivity_days, 1) * 4)
    rows = (
        ActiveAssignment.objects.filter(
            role_id__in=role_ids,
            origin=ActiveAssignment.Origin.ACTIVATION,
            starts_at__gte=since,
            starts_at__lte=now,
        )
        .values("user_id", "role_id")
        .annotate(last=Max("starts_at"))
    )
    return {(row["user_id"], row["role_id"]): row["last"] for row in rows}


def _recommend(kind: str, item: ReviewItem, inactivity_days: int, now: datetime) -> tuple[str, str]:
    window = timedelta(days=inactivity_days)
    if kind == "eligible":
        last, what = item.last_activation_at, "activated the role"
    else:
        last, what = item.last_sign_in_at, "signed in"
    seen = f" ({item.get_last_sign_in_source_display()})" if last and item.last_sign_in_source else ""
    if last is None or now - last > window:
        when = f"last on {last:%Y-%m-%d}{seen}" if last else "never in the window"
        return Decision.DENY, f"Has not {what} in the last {inactivity_days} days ({when})."
    return Decision.APPROVE, f"{what.capitalize()} on {last:%Y-%m-%d}{seen}."


def _reviewers_for(
    definition: ReviewDefinition,
    user_id: int | None,
    manager_id: int | None,
    owner_ids: Iterable[int],
    named: Iterable[int],
) -> list[int]:
    kind = definition.reviewer_type
    if kind == ReviewDefinition.Reviewers.SELF:
        return [user_id] if user_id else []
    if kind == ReviewDefinition.Reviewers.MANAGER:
        return [manager_id] if manager_id else []
    if kind == ReviewDefinition.Reviewers.OWNERS:
        return list(owner_ids)
    return list(named)


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
