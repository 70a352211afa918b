"""Small helpers of the API tests."""

from datetime import timedelta

from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY

from activations.services import activation_request
from common.step_up import VERIFIED_AT_SESSION_KEY
from tests.factories import totp_device


def error(response) -> dict:
    """The error body; every error of the API has this one shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    return body["error"]


def session_client(user, *, enforce_csrf=True, verified=True, stepped_up_at=None) -> Client:
    """A browser-like client signed in to the portal (MFA-verified unless told otherwise)."""
    client = Client(enforce_csrf_checks=enforce_csrf)
    client.force_login(user, backend="accounts.backends.PasswordBackend")
    if verified:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = totp_device(user).persistent_id
        if stepped_up_at is not None:
            session[VERIFIED_AT_SESSION_KEY] = stepped_up_at.isoformat()
        session.save()
    return client


def granted_activation(requester, eligibility, *, hours=1):
    """An activation granted now (the role must not need approval)."""
    return activation_request(
        requester=requester,
        eligible=eligibility,
        duration=timedelta(hours=hours),
        justification="Routine work",
        mfa_verified_at=timezone.now(),
    )
