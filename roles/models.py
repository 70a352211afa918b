"""The role catalog, role settings (policies) and eligible and active assignments."""

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar, Self, TypeVar, cast

# Named so: the plugin gives Role a "settings" attribute (RoleSettings.role), which hides
# the module in the class body.
from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q

from common.ids import uuid7

if TYPE_CHECKING:
    from accounts.models import DirectoryGroup, User


class Role(models.Model):
    """A privileged role: an Entra directory role, an Azure role, access to a governed Entra
    group (PIM for Groups: its membership or its ownership), or one of the portal's own."""

    class Kind(models.TextChoices):
        ENTRA = "entra", "Entra directory role"
        AZURE = "azure", "Azure resource role"
        M365 = "m365", "Microsoft 365 workload role"
        APP = "app", "Custom / local role"
        GROUP = "group", "Entra group (PIM for Groups)"

    class GroupAccess(models.TextChoices):
        """What a group role gives: membership of the group or ownership of it (Entra's
        accessId)."""

        MEMBER = "member"
        OWNER = "owner"

    class Tier(models.TextChoices):
        CRITICAL = "critical"
        HIGH = "high"
        STANDARD = "standard"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Entra role template id / Azure role definition GUID; empty for local roles.
    template_id = models.CharField(max_length=64, blank=True, default="")
    privileged = models.BooleanField(default=False)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STANDARD)
    builtin = models.BooleanField(default=False, editable=False)
    # Anti-lockout: the last permanent holder can never be removed (Global Administrator,
    # PIM Administrator).
    lockout_protected = models.BooleanField(default=False)
    owners = models.ManyToManyField(django_settings.AUTH_USER_MODEL, blank=True, related_name="owned_roles")
    # Django permissions ("app_label.codename") granted while the role is active: this is how
    # the portal's own roles (PIM Administrator, PIM Auditor) govern the portal itself.
    grants_permissions = models.JSONField(default=list, blank=True)
    # PIM for Groups: a group role is one access (member or owner) to one governed group, each
    # with its own settings; roles.services.group_govern makes both (roles.groups).
    governed_group = models.ForeignKey(
        "accounts.DirectoryGroup",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="governing_roles",
        editable=False,
    )
    # db_default too: code that predates the column (an older release during a rolling
    # deploy, an older migration state) inserts roles without it.
    group_access = models.CharField(
        max_length=8, choices=GroupAccess.choices, blank=True, default="", db_default="", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "template_id"],
                condition=~Q(template_id=""),
                name="roles_role_template_id_unique",
            ),
            # A group role names its group and its access; no other role names either.
            models.CheckConstraint(
                condition=(
                    Q(kind="group", governed_group__isnull=False, group_access__in=["member", "owner"])
                    | (~Q(kind="group") & Q(governed_group__isnull=True, group_access=""))
                ),
                name="roles_role_group_access_iff_group_kind",
            ),
            # One role per access to a group; the API's check finds it by (group, access).
            models.UniqueConstraint(
                fields=["governed_group", "group_access"],
                condition=Q(governed_group__isnull=False),
                name="roles_role_one_role_per_group_access",
            ),
        ]
        indexes = [
            # the API's check names a role by template id (roles.selectors.holding_sql)
            models.Index(
                fields=["template_id"], condition=~Q(template_id=""), name="roles_role_template_idx"
            ),
        ]
        permissions = [
            ("manage_eligible_assignments", "Manage the role's eligible assignments"),
            ("manage_active_assignments", "Manage the role's active assignments"),
            ("approve_activation", "Approve activations of the role"),
            ("review_access", "Review access to the role"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("roles:role_detail", args=[self.pk])


class AuthenticationStrength(models.TextChoices):
    """Which step-up a role takes (Entra's authentication context with a strength): any MFA
    (an authenticator app code, a recovery code or a passkey), or phishing-resistant (a passkey
    only: it signs the portal's origin, so a look-alike site cannot relay it)."""

    ANY_MFA = "any_mfa", "Any MFA"
    PHISHING_RESISTANT = "phishing_resistant", "Phishing-resistant (passkey)"


class RoleSettings(models.Model):
    """The role's policy (Entra's 'role settings'); defaults follow Entra's."""

    role = models.OneToOneField(Role, primary_key=True, on_delete=models.CASCADE, related_name="settings")
    # Activation
    activation_max_duration = models.DurationField(default=timedelta(hours=8))
    require_mfa = models.BooleanField(default=True)
    # Which MFA activating takes (when require_mfa), and which approving the role's requests
    # takes (common.step_up: only a passkey's step-up is phishing-resistant).
    activation_authentication_strength = models.CharField(
        max_length=20, choices=AuthenticationStrength.choices, default=AuthenticationStrength.ANY_MFA
    )
    approval_authentication_strength = models.CharField(
        max_length=20, choices=AuthenticationStrength.choices, default=AuthenticationStrength.ANY_MFA
    )
    require_justification = models.BooleanField(default=True)
    require_ticket = models.BooleanField(default=False)
    require_approval = models.BooleanField(default=False)
    approvers = models.ManyToManyField(django_settings.AUTH_USER_MODEL, blank=True, related_name="+")
    approver_groups = models.ManyToManyField("accounts.DirectoryGroup", blank=True, related_name="+")
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approval_timeout = models.DurationField(default=timedelta(hours=24))
    # Eligible assignments
    eligible_allow_permanent = models.BooleanField(default=False)
    eligible_max_duration = models.DurationField(default=timedelta(days=365))
    # Active (direct) assignments
    active_allow_permanent = models.BooleanField(default=False)
    active_max_duration = models.DurationField(default=timedelta(days=180))
    active_require_mfa = models.BooleanField(default=False)
    active_require_justification = models.BooleanField(default=True)
    # Entra's notification matrix (roles.notification_matrix): for each event (eligible or
    # active assignment, activation) and audience (administrators, the assignee or requester,
    # approvers), the default recipients on/off, additional addresses (one per line) and
    # "critical emails only". Defaults as Entra's: on, none, all emails.
    notify_eligible_admin_default = models.BooleanField(default=True)
    notify_eligible_admin_additional = models.TextField(blank=True)
    notify_eligible_admin_critical_only = models.BooleanField(default=False)
    notify_eligible_assignee_default = models.BooleanField(default=True)
    notify_eligible_assignee_additional = models.TextField(blank=True)
    notify_eligible_assignee_critical_only = models.BooleanField(default=False)
    notify_eligible_approver_default = models.BooleanField(default=True)
    notify_eligible_approver_additional = models.TextField(blank=True)
    notify_eligible_approver_critical_only = models.BooleanField(default=False)
    notify_active_admin_default = models.BooleanField(default=True)
    notify_active_admin_additional = models.TextField(blank=True)
    notify_active_admin_critical_only = models.BooleanField(default=False)
    notify_active_assignee_default = models.BooleanField(default=True)
    notify_active_assignee_additional = models.TextField(blank=True)
    notify_active_assignee_critical_only = models.BooleanField(default=False)
    notify_active_approver_default = models.BooleanField(default=True)
    notify_active_approver_additional = models.TextField(blank=True)
    notify_active_approver_critical_only = models.BooleanField(default=False)
    notify_activation_admin_default = models.BooleanField(default=True)
    notify_activation_admin_additional = models.TextField(blank=True)
    notify_activation_admin_critical_only = models.BooleanField(default=False)
    notify_activation_assignee_default = models.BooleanField(default=True)
    notify_activation_assignee_additional = models.TextField(blank=True)
    notify_activation_assignee_critical_only = models.BooleanField(default=False)
    notify_activation_approver_default = models.BooleanField(default=True)
    notify_activation_approver_additional = models.TextField(blank=True)
    notify_activation_approver_critical_only = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "role settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(activation_max_duration__gte=timedelta(minutes=30))
                & Q(activation_max_duration__lte=timedelta(hours=24)),
                name="roles_rolesettings_activation_duration_range",
            ),
            models.CheckConstraint(
                condition=Q(approvals_required__gte=1), name="roles_rolesettings_approvals_required_min"
            ),
            models.CheckConstraint(
                condition=Q(activation_authentication_strength__in=AuthenticationStrength.values)
                & Q(approval_authentication_strength__in=AuthenticationStrength.values),
                name="roles_rolesettings_authentication_strength_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Settings of {self.role}"

    @property
    def activation_needs_passkey(self) -> bool:
        """Activating takes a passkey's step-up (MFA required, phishing-resistant strength)."""
        return self.require_mfa and (
            self.activation_authentication_strength == AuthenticationStrength.PHISHING_RESISTANT
        )

    @property
    def approval_needs_passkey(self) -> bool:
        """Approving the role's requests takes a passkey's step-up."""
        return self.approval_authentication_strength == AuthenticationStrength.PHISHING_RESISTANT


_AssignmentT = TypeVar("_AssignmentT", bound="Assignment")


class AssignmentQuerySet(models.QuerySet[_AssignmentT]):
    def current(self, at: datetime) -> Self:
        """Assignments in force at the moment `at` (exact to the microsecond)."""
        return self.filter(
            Q(starts_at__lte=at),
            Q(ends_at__isnull=True) | Q(ends_at__gt=at),
            Q(ended_at__isnull=True) | Q(ended_at__gt=at),
        )

    def for_user(self, user: "User") -> Self:
        """Assignments of the user directly or through any of their groups."""
        from accounts.models import DirectoryGroup

        # Two index lookups, (user, role, ...) and (group, role, ...), joined with UNION ALL:
        # an OR across the two columns would make PostgreSQL bitmap-scan (or seq-scan) them.
        group_ids = DirectoryGroup.members.through.objects.filter(user_id=user.pk).values("directorygroup_id")
        base = self.model._default_manager.order_by()
        own = base.filter(user_id=user.pk).values("pk")
        through_groups = base.filter(group_id__in=group_ids).values("pk")
        return self.filter(pk__in=own.union(through_groups, all=True))


class Assignment(models.Model):
    """What eligible and active assignments share: who, which role, where, when."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)  # time-ordered: common.ids
    # No index of their own: each concrete model's (user, role, ...) and (group, role, ...)
    # indexes start with them, and every index more is one more write per row.
    user = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    group = models.ForeignKey(
        "accounts.DirectoryGroup",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="+")
    scope = models.CharField(max_length=400, default="/")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)  # None: permanent
    justification = models.TextField(blank=True)
    # The change ticket behind it (free text, as Entra's ticketInfo): an activation's, or the
    # one an administrator gave; sent to the directory with every request about it.
    ticket_number = models.CharField(max_length=100, blank=True, default="")
    ticket_system = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set when the assignment ended before its end (removed, revoked, deactivated, expired
    # by the job); the reason is in end_reason. Reads compare it with the time, so a job that
    # has not run yet never extends access.
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The last expiry notice sent (14 or 1 days before the end, 0 once ended); claimed by
    # activations.jobs.assignment_expiry_notices so each is sent once.
    expiry_notice_days = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)

    objects = AssignmentQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def principal(self) -> "User | DirectoryGroup":
        # the roles_*_one_principal constraints: exactly one of user and group is set
        return cast("User | DirectoryGroup", self.user if self.user_id else self.group)

    @property
    def principal_label(self) -> str:
        return self.principal.label

    @property
    def is_permanent(self) -> bool:
        return self.ends_at is None

    def is_current(self, at: datetime) -> bool:
        return (
            self.starts_at <= at
            and (self.ends_at is None or self.ends_at > at)
            and (self.ended_at is None or self.ended_at > at)
        )

    @property
    def label(self) -> str:
        return f"{self.role.name} for {self.principal_label} at {self.scope}"


def _principal_constraints(model: str) -> list[models.BaseConstraint]:
    return [
        models.CheckConstraint(
            condition=(Q(user__isnull=False) & Q(group__isnull=True))
            | (Q(user__isnull=True) & Q(group__isnull=False)),
            name=f"roles_{model}_one_principal",
        ),
        models.CheckConstraint(
            condition=Q(ends_at__isnull=True) | Q(ends_at__gt=models.F("starts_at")),
            name=f"roles_{model}_ends_after_start",
        ),
    ]


class EligibleAssignment(Assignment):
    """A principal may activate the role at the scope between starts_at and ends_at."""

    class EndReason(models.TextChoices):
        REMOVED = "removed"
        EXPIRED = "expired"
        REVIEW = "review", "Removed by an access review"

    end_reason = models.CharField(max_length=16, choices=EndReason.choices, blank=True)

    class Meta:
        constraints = _principal_constraints("eligibleassignment")
        indexes = [
            models.Index(fields=["user", "role"], name="roles_eligible_user_role_idx"),
            models.Index(fields=["group", "role"], name="roles_eligible_group_role_idx"),
            # the assignment-expiry reminder jobs look up ends_at of assignments still open
            models.Index(
                fields=["ends_at"], condition=Q(ended_at__isnull=True), name="roles_eligible_open_ends_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"eligible: {self.label}"


class ActiveAssignment(Assignment):
    """The principal holds the role at the scope between starts_at and ends_at."""

    class Origin(models.TextChoices):
        ACTIVATION = "activation"
        DIRECT = "direct", "Direct assignment"

    class EndReason(models.TextChoices):
        EXPIRED = "expired"
        DEACTIVATED = "deactivated"
        REVOKED = "revoked"
        REMOVED = "removed"
        REVIEW = "review", "Removed by an access review"

    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.DIRECT)
    eligible = models.ForeignKey(
        EligibleAssignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="activations"
    )
    end_reason = models.CharField(max_length=16, choices=EndReason.choices, blank=True)

    class Meta:
        constraints = _principal_constraints("activeassignment")
        indexes = [
            models.Index(fields=["user", "role", "scope"], name="roles_active_user_role_idx"),
            models.Index(fields=["group", "role", "scope"], name="roles_active_group_role_idx"),
            # used by activations' expiry job (assignment_expire_due)
            models.Index(
                fields=["ends_at"], condition=Q(ended_at__isnull=True), name="roles_active_open_ends_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"active: {self.label}"


class DirectoryOperation(models.Model):
    """An outbox row: a grant or revoke to carry out in the directory (Entra) after commit.

    Written in the same transaction as the assignment change; a task claims and runs it, and
    the periodic drain retries what failed transiently. The portal's own state is the source
    of truth: access ends on time whether or not the directory has caught up.
    """

    class Operation(models.TextChoices):
        GRANT = "grant"
        REVOKE = "revoke"
        # Eligibilities written back to the directory (Entra roles only).
        ELIGIBLE_ASSIGN = "eligible_assign", "eligibility assign"
        ELIGIBLE_UPDATE = "eligible_update", "eligibility update"
        ELIGIBLE_EXTEND = "eligible_extend", "eligibility extend"
        ELIGIBLE_RENEW = "eligible_renew", "eligibility renew"
        ELIGIBLE_REMOVE = "eligible_remove", "eligibility remove"

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    class Effect(models.TextChoices):
        WAITING = "waiting", "Waiting for the directory"
        EFFECTIVE = "effective", "Effective in the directory"
        UNCONFIRMED = "unconfirmed", "Not confirmed by the directory"

    # An active assignment's grant or revoke, or an eligibility's write-back: exactly one.
    assignment = models.ForeignKey(
        ActiveAssignment, null=True, blank=True, on_delete=models.PROTECT, related_name="directory_operations"
    )
    eligible = models.ForeignKey(
        EligibleAssignment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="directory_operations",
        db_index=False,  # roles_directory_eligible_idx: the active assignments' operations leave it empty
    )
    operation = models.CharField(max_length=16, choices=Operation.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    # Next attempt; a claim pushes it forward (lease). Used by directory_outbox_drain.
    next_attempt_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    result = models.JSONField(default=dict, blank=True)
    # Proof of effect: after the directory accepted the change, the worker checks that it is in
    # force (a grant) or gone (a revoke); "" when the back end cannot tell (no directory, or a
    # role that lives only in the portal).
    effect = models.CharField(max_length=12, choices=Effect.choices, blank=True, default="")
    effective_at = models.DateTimeField(null=True, blank=True)
    effect_checks = models.PositiveSmallIntegerField(default=0)
    # Next check of a WAITING operation; a claim pushes it forward (lease), as next_attempt_at.
    next_check_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    assignment__isnull=False, eligible__isnull=True, operation__in=["grant", "revoke"]
                )
                | Q(assignment__isnull=True, eligible__isnull=False, operation__startswith="eligible_"),
                name="roles_directoryoperation_one_target",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="roles_directory_due_idx"
            ),
            models.Index(
                fields=["next_check_at"], condition=Q(effect="waiting"), name="roles_directory_waiting_idx"
            ),
            # The alert on changes not (yet) in force reads only these few.
            models.Index(
                fields=["completed_at"],
                condition=Q(effect__in=["waiting", "unconfirmed"]),
                name="roles_directory_unproven_idx",
            ),
            models.Index(
                fields=["eligible"], condition=Q(eligible__isnull=False), name="roles_directory_eligible_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.target_id} ({self.status})"

    @property
    def target(self) -> "ActiveAssignment | EligibleAssignment":
        target = self.assignment or self.eligible
        if target is None:  # roles_directoryoperation_one_target forbids it
            raise ValueError(f"Directory operation {self.pk} has no target.")
        return target

    @property
    def target_id(self) -> uuid.UUID | None:
        return self.assignment_id or self.eligible_id

    @property
    def label(self) -> str:
        return f"directory {self.operation} of {self.target_id}"


class PendingChange(models.Model):
    """A change that waits for a second PIM Administrator (the two-person rule).

    Loosening a privileged role's settings (or un-marking a role as privileged), and an eligible
    or direct active assignment a person makes for themselves (or for a group they are in), are
    stored here instead of applied. Another PIM Administrator, with the portal role active and a
    fresh MFA check, approves it (roles.two_person.pending_change_approve: the same service that
    would have applied it at once applies it now) or rejects it; the proposer may cancel it; it
    expires at decide_by. The status only changes through roles.two_person, along TRANSITIONS.
    """

    class Kind(models.TextChoices):
        ROLE_SETTINGS = "role_settings", "Role settings loosened"
        ROLE = "role", "Role no longer privileged"
        SELF_ELIGIBLE = "self_eligible", "Eligible assignment for oneself"
        SELF_ACTIVE = "self_active", "Active assignment for oneself"

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        EXPIRED = "expired"
        CANCELED = "canceled"

    TERMINAL = (Status.APPROVED, Status.REJECTED, Status.EXPIRED, Status.CANCELED)
    TRANSITIONS: ClassVar[dict[str, set[str]]] = {Status.PENDING: set(TERMINAL)}

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="+")
    # What to apply: the service's arguments as JSON (durations in seconds, times in ISO 8601,
    # users and groups by primary key); roles.two_person reads it back.
    payload = models.JSONField(default=dict)
    # The values the change replaces, as they were when it was proposed (for the record; the
    # approval page compares with the values as they are then).
    before = models.JSONField(default=dict, blank=True)
    proposer = models.ForeignKey(django_settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField()
    # Deadline for a decision; used by roles.two_person.pending_change_expire_due.
    decide_by = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One pending loosening of a role's settings at a time: a second would be approved
            # against values the first one changes.
            models.UniqueConstraint(
                fields=["role"],
                condition=Q(kind="role_settings", status="pending"),
                name="roles_pendingchange_one_pending_settings_change",
            ),
            models.CheckConstraint(
                condition=Q(status="pending") | Q(decided_at__isnull=False),
                name="roles_pendingchange_decided_has_time",
            ),
        ]
        indexes = [
            # pending_change_expire_due
            models.Index(
                fields=["decide_by"], condition=Q(status="pending"), name="roles_pendingchange_due_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.role} ({self.status})"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("roles:pending_change_detail", args=[self.pk])

    @property
    def label(self) -> str:
        return f"{self.get_kind_display()} of {self.role.name} proposed by {self.proposer.label}"

    def can_become(self, status: str) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())
