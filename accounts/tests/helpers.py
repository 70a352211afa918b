"""Small helpers for the accounts tests."""

from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent
from tests.factories import PASSWORD, totp_code


def wrong_code(device) -> str:
    """A well-formed code the device does not accept now (none of the steps it tolerates)."""
    now = timezone.now()
    accepted = {totp_code(device, at=now + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(1000000) if f"{n:06d}" not in accepted)


def events_after(seq: int, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=seq, **filters).order_by("seq"))


def last_seq() -> int:
    last = AuditEvent.objects.order_by("-seq").first()
    return last.seq if last else 0


def sign_in_password(client, user):
    """Password only: signed in, not yet verified."""
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return response
