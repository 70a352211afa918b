"""What the Entra sync records: its runs, the eligibilities it imported, and drift (active
assignments in Entra that the portal did not make)."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class SyncRun(models.Model):
    """One run of `entra_sync`: when, how it ended, and counts and errors per kind of object.

    At most one run is RUNNING at a time (a partial unique constraint); a run left RUNNING by
    a killed worker is closed as failed by the next one."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        PARTIAL = "partial", "Finished with errors"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        COMMAND = "command"

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    # {"users": {"created": 3, "unchanged": 40, "errors": 1}, ...}
    counts = models.JSONField(default=dict, blank=True)
    # [{"kind": "users", "item": "alice@contoso.com", "message": "..."}], capped; counts has the total.
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="running"), name="entra_syncrun_one_running"
            ),
        ]
        permissions = [("test_connection", "Test the connection to Microsoft Entra ID")]

    def __str__(self) -> str:
        return f"Entra sync {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def label(self) -> str:
        return str(self)

    @property
    def error_count(self) -> int:
        return sum(kind.get("errors", 0) for kind in self.counts.values())


class ImportedEligibility(models.Model):
    """Ties a portal eligibility to the Entra eligibility it mirrors, so the sync ends it when
    Entra's ends, and never touches eligibilities made in the portal itself."""

    eligible = models.OneToOneField(
        "roles.EligibleAssignment", on_delete=models.CASCADE, related_name="entra_import"
    )
    principal_id = models.CharField(max_length=64)
    role_template_id = models.CharField(max_length=64)
    directory_scope = models.CharField(max_length=400)
    entra_id = models.CharField(max_length=200, blank=True)
    imported_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "imported eligibilities"
        constraints = [
            models.UniqueConstraint(
                fields=["principal_id", "role_template_id", "directory_scope"],
                name="entra_importedeligibility_one_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.principal_id} {self.role_template_id} {self.directory_scope}"


class DriftFinding(models.Model):
    """An active assignment in Entra that the portal did not make (alert "roles assigned
    outside the portal"). Open until the sync no longer sees it, or removes it."""

    class PrincipalType(models.TextChoices):
        USER = "user"
        GROUP = "group"
        OTHER = "other", "Other (service principal or not imported)"

    class Resolution(models.TextChoices):
        GONE = "gone", "No longer in Entra"
        REMOVED = "removed", "Removed by the portal"

    class Source(models.TextChoices):
        ENTRA = "entra", "Microsoft Entra ID (directory role)"
        ARM = "arm", "Azure Resource Manager (Azure role)"

    principal_id = models.CharField(max_length=64)
    principal_type = models.CharField(max_length=8, choices=PrincipalType.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    group = models.ForeignKey(
        "accounts.DirectoryGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    role = models.ForeignKey("roles.Role", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    role_template_id = models.CharField(max_length=64)  # for ARM: the role definition GUID
    directory_scope = models.CharField(max_length=400)  # for ARM: the Azure scope
    # Where the assignment is: an Entra directory role, or an Azure role in ARM (entra.arm_sync).
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.ENTRA)
    assignment_id = models.CharField(max_length=200, blank=True)  # the schedule instance id
    assignment_type = models.CharField(max_length=16, blank=True)  # Assigned | Activated
    entra_starts_at = models.DateTimeField(null=True, blank=True)
    entra_ends_at = models.DateTimeField(null=True, blank=True)  # None: permanent
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=8, choices=Resolution.choices, blank=True)

    class Meta:
        ordering = ["-first_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["principal_id", "role_template_id", "directory_scope"],
                condition=Q(resolved_at__isnull=True),
                name="entra_driftfinding_one_open_per_key",
            ),
        ]
        indexes = [
            # open_drift_findings() and the alert evaluation read only the open ones
            models.Index(
                fields=["first_seen_at"], condition=Q(resolved_at__isnull=True), name="entra_drift_open_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role_label} for {self.principal_label} at {self.directory_scope}"

    @property
    def principal_label(self) -> str:
        principal = self.user or self.group
        return principal.label if principal is not None else self.principal_id

    @property
    def role_label(self) -> str:
        return self.role.name if self.role is not None else self.role_template_id

    @property
    def label(self) -> str:
        return f"drift: {self}"
