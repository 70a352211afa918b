"""Account services: sign-in records, deactivation, MFA enrolment and step-up."""

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record

from .models import User


def user_sign_in_record(*, user: User) -> None:
    """Audit a sign-in; a superuser's is the break-glass account's and is flagged."""
    now = timezone.now()
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(last_sign_in_at=now)
        action = "auth.break_glass_sign_in" if user.is_superuser else "auth.sign_in"
        audit_record(action=action, actor=user, target=user, at=now)


def user_sign_in_failure_record(*, username: str) -> None:
    audit_record(
        action="auth.sign_in_failed",
        target=username,
        details={"username": username},
        outcome=AuditEvent.Outcome.FAILURE,
    )
