"""Reads about access reviews. Authorization lives here: the *_get_for_* selectors answer 404
for objects the user may not see (a reviewer sees only the items assigned to them)."""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from roles.models import ActiveAssignment

from .models import ReviewDefinition, ReviewerAssignment, ReviewInstance, ReviewItem

VIEW_DEFINITION = "reviews.view_reviewdefinition"
ADD_DEFINITION = "reviews.add_reviewdefinition"
CHANGE_DEFINITION = "reviews.change_reviewdefinition"
VIEW_INSTANCE = "reviews.view_reviewinstance"
VIEW_ITEMS = "reviews.view_reviewitem"  # the reports (PIM Auditor, PIM Administrator)

# The item filter of the instance page and My reviews: ?decision=...
DECISION_FILTERS = {
    "undecided": Q(decision=""),
    "approve": Q(decision=ReviewItem.Decision.APPROVE),
    "deny": Q(decision=ReviewItem.Decision.DENY),
    "dont_know": Q(decision=ReviewItem.Decision.DONT_KNOW),
}


def _run_counts() -> dict[str, Count]:
    """Per run: items by decision and removed by the results (the history of a review)."""
    return {
        "approved": Count("items", filter=Q(items__decision=ReviewItem.Decision.APPROVE)),
        "denied": Count("items", filter=Q(items__decision=ReviewItem.Decision.DENY)),
        "dont_know": Count("items", filter=Q(items__decision=ReviewItem.Decision.DONT_KNOW)),
        "accepted": Count("items", filter=Q(items__from_recommendation=True)),
        "removed": Count("items", filter=Q(items__outcome=ReviewItem.Outcome.REMOVED)),
    }


@dataclass(frozen=True)
class Progress:
    """Decided / total, for the progress bars."""

    decided: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.decided / self.total) if self.total else 100


def require_permission(*, user: User, perm: str) -> None:
    """404 (as if the page did not exist) for people without the permission."""
    if not user.has_perm(perm):
        raise Http404("No such page.")


def _decided_count() -> Count:
    return Count("items", filter=~Q(items__decision=""))


# --- Administrators and auditors -----------------------------------------------------------


def definitions_for_admin(*, user: User) -> Sequence[ReviewDefinition]:
    """Every definition with its last run (and that run's progress) as `last_instance`: two
    queries however many definitions and runs there are."""
    require_permission(user=user, perm=VIEW_DEFINITION)
    last = ReviewInstance.objects.filter(definition=OuterRef("pk")).order_by("-starts_at").values("pk")[:1]
    definitions = list(
        ReviewDefinition.objects.annotate(last_instance_id=Subquery(last), run_count=Count("instances"))
        .prefetch_related("roles")
        .order_by("name")
    )
    instances = ReviewInstance.objects.annotate(decided=_decided_count()).in_bulk(
        [d.last_instance_id for d in definitions if d.last_instance_id]
    )
    for instance in instances.values():
        instance.progress = Progress(decided=instance.decided, total=instance.item_count)
    for definition in definitions:
        definition.last_instance = instances.get(definition.last_instance_id)
    return definitions


def definition_get_for_admin(
    *, user: User, pk: uuid.UUID | str, perm: str = VIEW_DEFINITION
) -> ReviewDefinition:
    """A definition the user may see (or, with perm=CHANGE_DEFINITION, edit), else 404."""
    require_permission(user=user, perm=perm)
    definition = (
        ReviewDefinition.objects.select_related("fallback_reviewer", "created_by")
        .prefetch_related("roles", "named_reviewers")
        .filter(pk=pk)
        .first()
    )
    if definition is None:
        raise Http404("No such review.")
    return definition


def definition_instances(*, definition: ReviewDefinition) -> Sequence[ReviewInstance]:
    """The history of a definition's runs, newest first, each with its `progress` and counts
    per decision (one query)."""
    instances = list(
        definition.instances.annotate(decided=_decided_count(), **_run_counts()).order_by("-starts_at")
    )
    for instance in instances:
        instance.progress = Progress(decided=instance.decided, total=instance.item_count)
    return instances


def instance_get_for_viewer(*, user: User, pk: uuid.UUID | str, perm: str = VIEW_INSTANCE) -> ReviewInstance:
    """A run an administrator or auditor may see (perm=VIEW_ITEMS: export), else 404."""
    require_permission(user=user, perm=perm)
    instance = ReviewInstance.objects.select_related("definition").filter(pk=pk).first()
    if instance is None:
        raise Http404("No such review.")
    return instance


def instance_progress(*, instance: ReviewInstance) -> Progress:
    decided = instance.items.exclude(decision="").count()
    return Progress(decided=decided, total=instance.item_count)


def instance_decision_counts(*, instance: ReviewInstance) -> dict[str, int]:
    """The run's items by decision and outcome (one query), for its report email."""
    counts = ReviewInstance.objects.filter(pk=instance.pk).aggregate(
        decided=_decided_count(), **_run_counts()
    )
    return {"total": instance.item_count, **counts}


def with_live_usage(items: QuerySet[ReviewItem], *, at: datetime) -> QuerySet[ReviewItem]:
    """The items with their principal's use *now* beside the snapshot taken at the run's start:
    the user's last sign-ins (portal, Entra, Entra non-interactive: ReviewItem.live_sign_in
    takes the latest) and `live_activation_at` (their last activation of the role up to `at`);
    None for groups."""
    last_activation = (
        ActiveAssignment.objects.filter(
            user_id=OuterRef("user_id"),
            role_id=OuterRef("role_id"),
            origin=ActiveAssignment.Origin.ACTIVATION,
            starts_at__lte=at,
        )
        .order_by("-starts_at")
        .values("starts_at")[:1]
    )
    return items.annotate(
        live_portal_sign_in_at=F("user__last_sign_in_at"),
        live_directory_sign_in_at=F("user__directory_sign_in_at"),
        live_non_interactive_sign_in_at=F("user__directory_non_interactive_sign_in_at"),
        live_activation_at=Subquery(last_activation),
    )


def instance_items(*, instance: ReviewInstance, decision: str = "") -> QuerySet[ReviewItem]:
    """The run's items for its page (filtered by decision), with their reviewers."""
    items = instance.items.select_related("role", "decided_by").prefetch_related(
        Prefetch("reviewer_links", queryset=ReviewerAssignment.objects.select_related("reviewer"))
    )
    if decision in DECISION_FILTERS:
        items = items.filter(DECISION_FILTERS[decision])
    return items.order_by("principal_label", "role__name", "scope", "pk")


def report_items(*, instance: ReviewInstance) -> QuerySet[ReviewItem]:
    """Every item of the run for the reports; iterate with iterator(chunk_size=...)."""
    return (
        instance.items.select_related("role", "decided_by")
        .prefetch_related(
            Prefetch("reviewer_links", queryset=ReviewerAssignment.objects.select_related("reviewer"))
        )
        .order_by("principal_label", "role__name", "scope", "pk")
    )


# --- Reviewers -----------------------------------------------------------------------------


def _reviewer_items(user: User, now: datetime) -> QuerySet[ReviewItem]:
    return ReviewItem.objects.filter(
        reviewer_links__reviewer=user,
        instance__status=ReviewInstance.Status.ACTIVE,
        instance__ends_at__gt=now,
    )


def review_items_for_reviewer(
    *, user: User, decision: str = "", instance_id: uuid.UUID | None = None, at: datetime | None = None
) -> QuerySet[ReviewItem]:
    """The items the user is asked to decide in runs still open (My reviews): only theirs."""
    items = _reviewer_items(user, at or timezone.now()).select_related(
        "instance__definition", "role", "decided_by"
    )
    if decision in DECISION_FILTERS:
        items = items.filter(DECISION_FILTERS[decision])
    if instance_id is not None:
        items = items.filter(instance_id=instance_id)
    return items.order_by("instance__ends_at", "instance_id", "principal_label", "role__name", "scope", "pk")


def reviewer_progress(*, user: User, at: datetime | None = None) -> list[dict[str, Any]]:
    """Per open run the user reviews in: its definition's name, the user's decided / total."""
    rows = (
        _reviewer_items(user, at or timezone.now())
        .values("instance_id", "instance__definition__name", "instance__ends_at")
        .annotate(total=Count("pk"), decided=Count("pk", filter=~Q(decision="")))
        .order_by("instance__ends_at", "instance_id")
    )
    return [
        {
            "instance_id": row["instance_id"],
            "name": row["instance__definition__name"],
            "ends_at": row["instance__ends_at"],
            "progress": Progress(decided=row["decided"], total=row["total"]),
        }
        for row in rows
    ]


def recommendations_to_accept(
    *, user: User, instance_id: uuid.UUID | None = None, at: datetime | None = None
) -> int:
    """How many of the user's undecided items in open runs have a recommendation to accept."""
    items = (
        _reviewer_items(user, at or timezone.now())
        .filter(decision="", instance__definition__recommendations=True)
        .exclude(recommendation="")
    )
    if instance_id is not None:
        items = items.filter(instance_id=instance_id)
    return items.count()


def review_item_get_for_reviewer(*, user: User, pk: uuid.UUID | str) -> ReviewItem:
    """An item the user is a reviewer of, else 404 (whether or not it exists)."""
    item = ReviewItem.objects.filter(pk=pk, reviewer_links__reviewer=user).first()
    if item is None:
        raise Http404("No such review item.")
    return item


def review_items_get_for_reviewer(*, user: User, pks: Iterable[uuid.UUID | str]) -> list[ReviewItem]:
    """Items the user is a reviewer of; 404 if any one of them is not."""
    pks = set(pks)
    items = list(ReviewItem.objects.filter(pk__in=pks, reviewer_links__reviewer=user))
    if not pks or len(items) != len(pks):
        raise Http404("No such review item.")
    return items
