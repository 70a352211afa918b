"""Activation requests (and extension / renewal requests) and their approvals."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from common.ids import uuid7
from roles.models import ActiveAssignment, EligibleAssignment, Role


class TransitionNotAllowed(Exception):
    """A request was asked to move to a state its current state cannot reach."""

    def __init__(self, request: "ActivationRequest", target: "ActivationRequest.Status") -> None:
        self.request = request
        self.target = target
        super().__init__(
            f"This request is {request.get_status_display().lower()}; "
            f"it cannot become {target.label.lower()}."
        )


class ActivationRequest(models.Model):
    """A requester's ask to activate an eligible role, or to extend / renew one of their own
    assignments: an eligibility (`eligible`), or a direct active assignment (`active_target`).

    The status only changes through activations.services, along TRANSITIONS.
    """

    class Kind(models.TextChoices):
        ACTIVATE = "activate"
        EXTEND = "extend", "Extension"
        RENEW = "renew", "Renewal"

    class Status(models.TextChoices):
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        GRANTED = "granted"
        DENIED = "denied"
        CANCELED = "canceled"
        TIMED_OUT = "timed_out", "Timed out"
        EXPIRED = "expired"
        DEACTIVATED = "deactivated"
        REVOKED = "revoked"

    OPEN = (Status.PENDING_APPROVAL, Status.GRANTED)
    TERMINAL = (
        Status.DENIED,
        Status.CANCELED,
        Status.TIMED_OUT,
        Status.EXPIRED,
        Status.DEACTIVATED,
        Status.REVOKED,
    )
    TRANSITIONS: ClassVar[dict[str, set[str]]] = {
        Status.PENDING_APPROVAL: {Status.GRANTED, Status.DENIED, Status.CANCELED, Status.TIMED_OUT},
        Status.GRANTED: {Status.EXPIRED, Status.DEACTIVATED, Status.REVOKED},
    }

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)  # time-ordered: common.ids
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ACTIVATE)
    requester = models.ForeignKey(  # indexed by activations_requester_idx, which starts with it
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="activation_requests", db_index=False
    )
    # The eligibility activated, extended or renewed; None: the request extends or renews the
    # direct active assignment `active_target` (activations_request_one_target).
    # The foreign keys that most rows leave empty, or that are looked up only while the
    # request is pending, are indexed only there (activations_*_idx below): every closing of a
    # request writes a new version of the row into each full index (the expiry sweep, 100,000
    # at once after a backlog), so the table keeps few of them.
    eligible = models.ForeignKey(
        EligibleAssignment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="requests",
        db_index=False,  # activations_eligible_idx
    )
    active_target = models.ForeignKey(
        ActiveAssignment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="change_requests",
        db_index=False,  # activations_target_idx
    )
    role = models.ForeignKey(
        Role,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # activations_role_pending_idx
    )
    scope = models.CharField(max_length=400)
    status = models.CharField(max_length=20, choices=Status.choices)
    # Requested start (scheduled activation); None: at grant. The clock starts at grant.
    starts_at = models.DateTimeField(null=True, blank=True)
    duration = models.DurationField()
    # What the requester asked for, kept when a decision cut `duration` to the role's maximum
    # at the time (decisions re-check the live policy); None: granted as asked.
    requested_duration = models.DurationField(null=True, blank=True)
    justification = models.TextField(blank=True)
    ticket_number = models.CharField(max_length=100, blank=True)
    ticket_system = models.CharField(max_length=100, blank=True)
    mfa_verified_at = models.DateTimeField(null=True, blank=True)
    # The factor of that check (common.step_up.Factor; empty: none, or from before factors
    # were kept): a phishing-resistant role's activation is made with a passkey.
    mfa_factor = models.CharField(max_length=20, blank=True)
    approvals_required = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    # Deadline for a decision (pending requests only); used by activation_timeout_due.
    decide_by = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # activations_decided_by_idx
    )
    decision_reason = models.TextField(blank=True)
    active_assignment = models.OneToOneField(
        ActiveAssignment, null=True, blank=True, on_delete=models.PROTECT, related_name="activation_request"
    )
    granted_at = models.DateTimeField(null=True, blank=True)
    # End of the granted access (copied from the active assignment); used by activation_expire_due.
    ends_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Reminder bookkeeping: claimed by the reminder job so it is sent once.
    ending_reminder_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["requester", "role", "scope"],
                condition=Q(kind="activate", status__in=["pending_approval", "granted"]),
                name="activations_request_one_open_activation",
            ),
            models.UniqueConstraint(
                fields=["requester", "eligible"],
                condition=Q(kind__in=["extend", "renew"], status="pending_approval"),
                name="activations_request_one_open_extension",
            ),
            models.UniqueConstraint(
                fields=["requester", "active_target"],
                condition=Q(kind__in=["extend", "renew"], status="pending_approval"),
                name="activations_request_one_open_active_change",
            ),
            models.CheckConstraint(
                condition=Q(eligible__isnull=False, active_target__isnull=True)
                | Q(eligible__isnull=True, active_target__isnull=False, kind__in=["extend", "renew"]),
                name="activations_request_one_target",
            ),
            models.CheckConstraint(
                condition=~Q(status="pending_approval") | Q(decide_by__isnull=False),
                name="activations_request_pending_has_deadline",
            ),
            models.CheckConstraint(
                condition=~Q(status="granted", kind="activate") | Q(active_assignment__isnull=False),
                name="activations_request_granted_has_assignment",
            ),
        ]
        indexes = [
            # activation_timeout_due
            models.Index(
                fields=["decide_by"], condition=Q(status="pending_approval"), name="activations_pending_idx"
            ),
            # activation_expire_due and the ending reminder
            models.Index(
                fields=["ends_at"], condition=Q(status="granted"), name="activations_granted_ends_idx"
            ),
            models.Index(fields=["requester", "-created_at"], name="activations_requester_idx"),
            # My roles' pending requests of an eligibility (selectors), a role's pending
            # requests (a policy change re-checks them); a deletion's PROTECT check of an
            # eligibility or a role (none is deleted that ever had a request) scans the table
            models.Index(
                fields=["eligible"], condition=Q(status="pending_approval"), name="activations_eligible_idx"
            ),
            models.Index(
                fields=["role"], condition=Q(status="pending_approval"), name="activations_role_pending_idx"
            ),
            models.Index(
                fields=["active_target"],
                condition=Q(active_target__isnull=False),
                name="activations_target_idx",
            ),
            models.Index(
                fields=["decided_by"],
                condition=Q(decided_by__isnull=False),
                name="activations_decided_by_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.role} by {self.requester} ({self.get_status_display()})"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("activations:request_detail", args=[self.pk])

    @property
    def label(self) -> str:
        return f"{self.get_kind_display().lower()} request {self.role.name} by {self.requester.label}"

    @property
    def target(self) -> "EligibleAssignment | ActiveAssignment":
        """The assignment the request is about: the eligibility, or the direct active assignment
        an extension or renewal is for."""
        return self.eligible if self.eligible_id else self.active_target  # type: ignore[return-value]

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN

    def can_become(self, status: str) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())


class RequestApprover(models.Model):
    """An approver of one request, resolved from the role settings when it was made (frozen)."""

    request = models.ForeignKey(ActivationRequest, on_delete=models.CASCADE, related_name="approvers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request", "user"], name="activations_requestapprover_unique"),
        ]
        indexes = [models.Index(fields=["user", "request"], name="activations_approver_user_idx")]

    def __str__(self) -> str:
        return f"{self.user} for {self.request_id}"


class Approval(models.Model):
    """One approver's decision on a request; one per person and request."""

    class Decision(models.TextChoices):
        APPROVE = "approve"
        DENY = "deny"

    request = models.ForeignKey(ActivationRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.TextField(blank=True)
    mfa_verified_at = models.DateTimeField()
    mfa_factor = models.CharField(max_length=20, blank=True)  # common.step_up.Factor
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["decided_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "approver"], name="activations_approval_once_per_approver"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.decision}d {self.request_id}"
