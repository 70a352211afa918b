"""People and groups: the principals that hold roles."""

from datetime import datetime

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac


class SignInSource(models.TextChoices):
    PORTAL = "portal", "the portal"
    DIRECTORY = "directory", "Entra ID"
    DIRECTORY_NON_INTERACTIVE = "directory_non_interactive", "Entra ID, non-interactive"


def latest_sign_in(
    portal: datetime | None, directory: datetime | None, non_interactive: datetime | None
) -> tuple[datetime | None, str]:
    """The latest sign-in anywhere (the portal's, or one Entra saw) and its source: what access
    reviews and the stale-account alert call the last sign-in. The portal's wins a tie."""
    seen = [
        (moment, source)
        for moment, source in (
            (portal, SignInSource.PORTAL),
            (directory, SignInSource.DIRECTORY),
            (non_interactive, SignInSource.DIRECTORY_NON_INTERACTIVE),
        )
        if moment is not None
    ]
    if not seen:
        return None, ""
    moment, source = max(seen, key=lambda pair: pair[0])  # max keeps the first of equals
    return moment, str(source)


class User(AbstractUser):
    """A person who signs in to the portal (and, with Entra sync, a directory user)."""

    display_name = models.CharField(max_length=256, blank=True)
    manager = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    # Entra object id (or another directory's stable id); empty for local-only accounts.
    external_id = models.CharField(max_length=64, blank=True, default="")
    # Bumped to end every session of the user at once (deactivation, reset).
    session_epoch = models.PositiveIntegerField(default=0, editable=False)
    last_sign_in_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Sign-ins the directory saw (Microsoft Graph signInActivity, imported by the Entra sync):
    # interactive, and non-interactive (tokens refreshed by apps on the person's behalf).
    directory_sign_in_at = models.DateTimeField(null=True, blank=True, editable=False)
    directory_non_interactive_sign_in_at = models.DateTimeField(null=True, blank=True, editable=False)
    # IANA name (Europe/Paris) the portal shows times in; empty: not chosen yet, the browser's
    # is recorded on the next page view (static/js/time-zone.js), UTC until then.
    time_zone = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=~models.Q(external_id=""),
                name="accounts_user_external_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username

    def get_session_auth_hash(self) -> str:
        # Django invalidates any session whose stored hash no longer matches: including the
        # epoch ends all of a user's sessions without scanning the session table.
        return salted_hmac(
            "accounts.User.get_session_auth_hash",
            f"{self.password}:{self.session_epoch}",
            algorithm="sha256",
        ).hexdigest()

    @property
    def last_seen(self) -> tuple[datetime | None, str]:
        """The latest sign-in anywhere and its source (latest_sign_in)."""
        return latest_sign_in(
            self.last_sign_in_at, self.directory_sign_in_at, self.directory_non_interactive_sign_in_at
        )

    @property
    def last_seen_label(self) -> str:
        """ "2026-03-01 (Entra ID)", or "never"."""
        moment, source = self.last_seen
        if moment is None:
            return "never"
        return f"{moment:%Y-%m-%d} ({SignInSource(source).label})"

    @property
    def label(self) -> str:
        """Static text that names the user in audit events."""
        return self.label_of(self.username, self.display_name, self.first_name, self.last_name)

    @staticmethod
    def label_of(username: str, display_name: str, first_name: str, last_name: str) -> str:
        """label from the columns, for set-based jobs that read rows, not users."""
        name = display_name or f"{first_name} {last_name}".strip()  # AbstractUser.get_full_name()
        return f"{name} <{username}>" if name else username


class DirectoryGroup(models.Model):
    """A group that can hold roles; every member inherits its eligible and active roles."""

    name = models.CharField(max_length=256, unique=True)
    description = models.TextField(blank=True)
    external_id = models.CharField(max_length=64, blank=True, default="")
    members = models.ManyToManyField(User, related_name="directory_groups", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=~models.Q(external_id=""),
                name="accounts_directorygroup_external_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        return f"group {self.name}"


class ExternalIdentity(models.Model):
    """A person's account at the single sign-on provider: the link that a sign-in follows.

    Matched by the provider's immutable subject alone, never by email or username (those can
    be renamed or reused): ``sub`` within the issuer, or for Microsoft Entra ID the object id
    (``oid``) within the tenant (``tid``), which is also what the directory sync keys on."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="external_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    # Entra's tenant id (the subject is then the object id); empty for other providers.
    tenant_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_sign_in_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name_plural = "external identities"
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "subject"], name="accounts_externalidentity_issuer_subject_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
