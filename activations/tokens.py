"""Approval-email links. The token is a locator, not a credential: it is signed, bound to one
approver and one request, expires with the request and dies once the request is decided
(it covers the request's state, like Django's password-reset tokens). It never signs anyone
in; the decision is still a POST by the signed-in, freshly verified approver."""

from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from .models import ActivationRequest

SALT = "activations.approval-link"
MAX_AGE = timedelta(days=15)  # longer than any approval timeout; the request's own deadline rules


def _state(request: ActivationRequest, approver_pk) -> str:
    value = (
        f"{request.pk}:{approver_pk}:{request.status}:{request.decide_by and request.decide_by.isoformat()}"
    )
    return salted_hmac(SALT, value, algorithm="sha256").hexdigest()[:32]


def approval_token(request: ActivationRequest, approver) -> str:
    return signing.dumps(
        {"r": str(request.pk), "a": approver.pk, "s": _state(request, approver.pk)}, salt=SALT
    )


def approval_link(request: ActivationRequest, approver) -> str:
    path = reverse("activations:request_detail", args=[request.pk])
    return f"{settings.PIM_BASE_URL}{path}?t={approval_token(request, approver)}"


def approval_token_problem(token: str, *, request: ActivationRequest, user) -> str | None:
    """Why the token cannot be used by this user for this request, or None if it can."""
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.SignatureExpired:
        return "This approval link has expired."
    except signing.BadSignature:
        return "This approval link is not valid."
    if not isinstance(data, dict) or data.get("r") != str(request.pk):
        return "This approval link is not valid."
    if data.get("a") != user.pk:
        return "This approval link was sent to another approver."
    decide_by = cast(datetime, request.decide_by)  # set while pending (…_pending_has_deadline)
    if request.status != ActivationRequest.Status.PENDING_APPROVAL or timezone.now() >= decide_by:
        return "This request has already been decided or has timed out."
    if not constant_time_compare(data.get("s", ""), _state(request, user.pk)):
        return "This approval link is no longer valid."
    return None
