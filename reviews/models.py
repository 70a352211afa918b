"""Access reviews: recurring definitions, their instances (one run each) and review items."""

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, cast

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.models import SignInSource, latest_sign_in
from roles.models import ActiveAssignment, EligibleAssignment, Role

if TYPE_CHECKING:
    from .selectors import Progress


class ReviewDefinition(models.Model):
    """What is reviewed, by whom, how often and what happens at the end."""

    class Reviewers(models.TextChoices):
        SELF = "self", "The principals themselves"
        MANAGER = "manager", "The principal's manager"
        OWNERS = "owners", "The role's owners"
        NAMED = "named", "Named reviewers"

    class Recurrence(models.TextChoices):
        ONCE = "once"
        WEEKLY = "weekly"
        MONTHLY = "monthly"
        QUARTERLY = "quarterly"
        SEMIANNUALLY = "semiannually", "Semi-annually"
        ANNUALLY = "annually"

    class DefaultDecision(models.TextChoices):
        NO_CHANGE = "no_change", "No change"
        REMOVE = "remove", "Remove access"
        APPROVE = "approve", "Approve access"
        RECOMMENDATION = "recommendation", "Take the recommendation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    roles = models.ManyToManyField(Role, related_name="review_definitions")
    review_eligible = models.BooleanField(default=True)
    review_active = models.BooleanField(default=False)
    reviewer_type = models.CharField(max_length=16, choices=Reviewers.choices, default=Reviewers.MANAGER)
    named_reviewers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    fallback_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recurrence = models.CharField(max_length=16, choices=Recurrence.choices, default=Recurrence.QUARTERLY)
    start_date = models.DateField()
    duration_days = models.PositiveSmallIntegerField(default=14)
    # When a recurring review stops: no run starts after end_date, nor beyond max_runs runs
    # (both empty: it recurs until it is disabled; reviews.services refuses both at once).
    end_date = models.DateField(null=True, blank=True)
    max_runs = models.PositiveSmallIntegerField(null=True, blank=True)
    # Emailed each run's report when it ends (empty: the creator, else the PIM Administrators).
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    justification_required = models.BooleanField(default=True)
    reminders = models.BooleanField(default=True)
    recommendations = models.BooleanField(default=True)
    inactivity_days = models.PositiveSmallIntegerField(default=30)
    default_decision = models.CharField(
        max_length=16, choices=DefaultDecision.choices, default=DefaultDecision.NO_CHANGE
    )
    auto_apply = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # Set by reviews.selectors.definitions_for_admin for the list page.
    last_instance: "ReviewInstance | None"

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(review_eligible=True) | Q(review_active=True),
                name="reviews_definition_reviews_something",
            ),
            models.CheckConstraint(
                condition=Q(duration_days__gte=1) & Q(duration_days__lte=180),
                name="reviews_definition_duration_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        return f"access review {self.name}"


class ReviewInstance(models.Model):
    """One run of a definition, from starts_at to ends_at."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        CLOSED = "closed", "Ended, not applied"
        APPLIED = "applied"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    definition = models.ForeignKey(ReviewDefinition, on_delete=models.PROTECT, related_name="instances")
    occurrence = models.PositiveIntegerField()  # 0 for the first run, 1 for the next...
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    item_count = models.PositiveIntegerField(default=0)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    # When the owners were emailed the report (once per run, claimed by a conditional update).
    report_emailed_at = models.DateTimeField(null=True, blank=True)

    # Set by the reviews.selectors that list runs.
    progress: "Progress"

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["definition", "occurrence"], name="reviews_instance_one_per_occurrence"
            ),
        ]
        indexes = [
            # review_instances_close_due
            models.Index(fields=["ends_at"], condition=Q(status="active"), name="reviews_active_ends_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.definition} #{self.occurrence + 1}"

    @property
    def label(self) -> str:
        return f"review {self.definition.name} {self.starts_at:%Y-%m-%d}"


class ReviewItem(models.Model):
    """One assignment under review in one instance, with its reviewers and decision."""

    class AssignmentType(models.TextChoices):
        ELIGIBLE = "eligible"
        ACTIVE = "active"

    class Decision(models.TextChoices):
        APPROVE = "approve"
        DENY = "deny"
        # The reviewer cannot tell: recorded (and counted as reviewed); the access is kept as
        # it is, whatever the definition does with items nobody decided (as in Entra).
        DONT_KNOW = "dont_know", "Don't know"

    class Outcome(models.TextChoices):
        KEPT = "kept"
        REMOVED = "removed"
        UNCHANGED = "unchanged", "No change"
        ALREADY_ENDED = "already_ended", "Had already ended"
        REFUSED = "refused", "Removal refused"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    instance = models.ForeignKey(ReviewInstance, on_delete=models.CASCADE, related_name="items")
    assignment_type = models.CharField(max_length=8, choices=AssignmentType.choices)
    eligible = models.ForeignKey(
        EligibleAssignment, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    active = models.ForeignKey(
        ActiveAssignment, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    group = models.ForeignKey(
        "accounts.DirectoryGroup", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    principal_label = models.CharField(max_length=300)
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="+")
    scope = models.CharField(max_length=400)
    reviewers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="ReviewerAssignment", related_name="+"
    )
    last_activation_at = models.DateTimeField(null=True, blank=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)
    # Where that sign-in was seen: the portal, or Entra (interactive or not); see accounts.User.
    last_sign_in_source = models.CharField(
        max_length=32, choices=SignInSource.choices, blank=True, default=""
    )
    recommendation = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    recommendation_reason = models.CharField(max_length=300, blank=True)
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    # The decision came from "Accept recommendations" rather than the reviewer's own choice.
    from_recommendation = models.BooleanField(default=False)
    justification = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    outcome_detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["principal_label", "role_id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(assignment_type="eligible") & Q(eligible__isnull=False) & Q(active__isnull=True))
                | (Q(assignment_type="active") & Q(active__isnull=False) & Q(eligible__isnull=True)),
                name="reviews_item_one_assignment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.principal_label}: {self.role_id} ({self.assignment_type})"

    @property
    def live_sign_in(self) -> tuple[datetime | None, str]:
        """The latest sign-in now, from any source, and the source (with_live_usage's
        annotations; latest_sign_in's rule)."""
        return latest_sign_in(
            getattr(self, "live_portal_sign_in_at", None),
            getattr(self, "live_directory_sign_in_at", None),
            getattr(self, "live_non_interactive_sign_in_at", None),
        )

    @property
    def live_sign_in_at(self) -> datetime | None:
        return self.live_sign_in[0]

    @property
    def live_sign_in_source_label(self) -> str:
        source = self.live_sign_in[1]
        return str(SignInSource(source).label) if source else ""

    @property
    def label(self) -> str:
        return f"review item {self.principal_label} / {self.scope}"

    @property
    def assignment(self) -> EligibleAssignment | ActiveAssignment:
        assignment = self.eligible if self.assignment_type == self.AssignmentType.ELIGIBLE else self.active
        return cast(EligibleAssignment | ActiveAssignment, assignment)  # reviews_item_one_assignment


class ReviewerAssignment(models.Model):
    """Who reviews an item (resolved when the instance starts)."""

    # No index of their own: the unique (item, reviewer) and reviews_reviewer_item_idx start
    # with them, and a review start writes a link per item (one index write less each).
    item = models.ForeignKey(
        ReviewItem, on_delete=models.CASCADE, related_name="reviewer_links", db_index=False
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "reviewer"], name="reviews_reviewerassignment_unique"),
        ]
        indexes = [models.Index(fields=["reviewer", "item"], name="reviews_reviewer_item_idx")]

    def __str__(self) -> str:
        return f"{self.reviewer} reviews {self.item_id}"
