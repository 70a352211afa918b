"""Personal access tokens for the REST API."""

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q


class ApiToken(models.Model):
    """A bearer token for the REST API, acting as its user.

    Only a SHA-256 digest of the token is stored; the token itself is shown once, when it is
    made. It reads ``pim_<prefix>_<secret>``: the prefix is not secret (it finds the row and
    names the token in lists), the secret is 256 random bits, so a fast hash is enough (a
    slow password hash protects guessable secrets, which these are not).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)  # None: until revoked
    # Written at most once a minute (api.authentication), so a busy token costs no writes.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The step-up window (POST /api/v1/step-up/): when the token's holder last proved MFA, and
    # with what (common.step_up.Factor). Fresh for PIM_STEP_UP_WINDOW, like a session's.
    step_up_at = models.DateTimeField(null=True, blank=True, editable=False)
    step_up_factor = models.CharField(max_length=20, blank=True, editable=False)
    # A passkey challenge handed out for this token and not answered yet (single use).
    step_up_challenge = models.JSONField(null=True, blank=True, editable=False)
    step_up_challenge_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("created_at")),
                name="api_apitoken_expires_after_created",
            ),
        ]
        indexes = [models.Index(fields=["user", "-created_at"], name="api_token_user_idx")]
        permissions = [
            ("check_role", "Ask whether a person holds a role (the authorization check endpoint)"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix})"

    @property
    def display_prefix(self) -> str:
        return f"pim_{self.prefix}_…"

    @property
    def label(self) -> str:
        return f"API token {self.name} ({self.display_prefix}) of {self.user.label}"

    def is_usable(self, at: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > at)

    def status(self, at: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= at:
            return "expired"
        return "active"
