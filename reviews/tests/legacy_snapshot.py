"""The review start as it was before it became set-based (reviews.services.snapshot): every
assignment read into Python, one ReviewItem and ReviewerAssignment instance built per item and
per reviewer. Kept, verbatim but for not inserting anything, as the reference the set-based
statements must reproduce exactly (test_start_set_based)."""

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db.models import Max

from accounts.models import DirectoryGroup, User, latest_sign_in
from reviews.models import ReviewDefinition, ReviewerAssignment, ReviewInstance, ReviewItem
from reviews.services import Decision
from roles.models import ActiveAssignment, EligibleAssignment, Role
from roles.selectors import pim_administrators


def snapshot_items(
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
    # A sign-in's date names its source; an activation's is the portal's own.
    named = kind != "eligible" and last and item.last_sign_in_source
    seen = f" ({item.get_last_sign_in_source_display()})" if named else ""
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
