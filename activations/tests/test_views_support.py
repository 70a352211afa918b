"""Building blocks of the activation page tests (no tests here): roles with the settings a test
needs, requests made through the real services, and a clock that codes can follow.

TOTP codes cannot be replayed: a test that needs another code after signing in moves the
clock past the current 30-second step (`next_code`)."""

from datetime import UTC, datetime, timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from activations import services
from activations.models import Approval
from audit.models import AuditEvent
from tests.factories import PASSWORD, totp_code, totp_device

from .helpers import HOUR, eligible_for, reloaded, role_with  # noqa: F401 - re-exported to the view tests

# Noon on a Monday; tests that need codes freeze the clock here (time_machine, tick=False).
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
XSS = "<script>alert(1)</script>"
ESCAPED_XSS = "&lt;script&gt;alert(1)&lt;/script&gt;"


def pending_request(requester, *approvers, justification="Incident 42", role=None, **settings):
    """A request waiting for the approvers' decision, made through the real service."""
    role = role or role_with(approvers=approvers, **settings)
    return services.activation_request(
        requester=requester,
        eligible=eligible_for(requester, role),
        duration=HOUR,
        justification=justification,
        mfa_verified_at=timezone.now(),
    )


def granted_request(requester, *, role=None, justification="Incident 42"):
    role = role or role_with()
    return services.activation_request(
        requester=requester,
        eligible=eligible_for(requester, role),
        duration=HOUR,
        justification=justification,
        mfa_verified_at=timezone.now(),
    )


def decisions(request) -> list[Approval]:
    return list(Approval.objects.filter(request=request))


def decision_events(request) -> list[str]:
    """Audit actions on the request other than its creation."""
    return list(
        AuditEvent.objects.filter(target_type="activations.activationrequest", target_id=str(request.pk))
        .exclude(action__endswith=".requested")
        .values_list("action", flat=True)
    )


def next_code(client, clock) -> str:
    """Move the frozen clock to the next 30-second step and give the code shown there."""
    clock.shift(timedelta(seconds=30))
    return totp_code(client.device)


def sign_in(user) -> Client:
    """A new client signed in as the user through the real forms (password, then a TOTP code),
    like conftest's verified_client but one per person, for tests with several people."""
    client = Client()
    device = totp_device(user)
    response = client.post(reverse("accounts:login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    response = client.post(reverse("accounts:verify"), {"otp_token": totp_code(device)})
    assert response.status_code == 302, response.content
    client.device = device
    return client


def csrf_client(signed_in: Client) -> Client:
    """A client that enforces CSRF checks, sharing the session of a signed-in client."""
    client = Client(enforce_csrf_checks=True)
    client.cookies = signed_in.cookies
    return client


def page(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []
