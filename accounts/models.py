"""People and groups: the principals that hold roles."""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.crypto import salted_hmac


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
    def label(self) -> str:
        """Static text that names the user in audit events."""
        name = self.display_name or self.get_full_name()
        return f"{name} <{self.username}>" if name else self.username


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
