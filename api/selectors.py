"""Reads for the API. Authorization lives here: the *_get_for_* selectors answer 404 for
objects the caller may not see, exactly as for objects that do not exist."""

import uuid
from datetime import datetime

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import User
from activations import selectors as activation_selectors
from activations.models import ActivationRequest
from activations.selectors import InboxFilters, request_visible_to
from alerts.models import Alert
from alerts.services import VIEW_PERMISSION as ALERT_VIEW_PERMISSION
from roles.models import Role

from .models import ApiToken


def _uuid_or_404(pk: object) -> uuid.UUID:
    try:
        return pk if isinstance(pk, uuid.UUID) else uuid.UUID(str(pk))
    except ValueError:
        raise Http404("Not found.") from None


# --- Tokens ----------------------------------------------------------------------------------


def api_tokens_for_user(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def api_token_get_for_user(*, user: User, pk: object) -> ApiToken:
    token = ApiToken.objects.filter(user=user, pk=_uuid_or_404(pk)).first()
    if token is None:
        raise Http404("No such token.")
    return token


# --- Roles and assignments -------------------------------------------------------------------


def roles_catalog() -> QuerySet[Role]:
    return Role.objects.select_related("settings").order_by("name")


# --- Activation requests ---------------------------------------------------------------------


def _requests_with_details() -> QuerySet[ActivationRequest]:
    return ActivationRequest.objects.select_related("role", "requester", "decided_by").prefetch_related(
        "approvers__user", "approvals__approver"
    )


def activation_requests_for_requester(
    *, user: User, status: str | None = None
) -> QuerySet[ActivationRequest]:
    requests = _requests_with_details().filter(requester=user)
    return requests.filter(status=status) if status else requests


def activation_request_get_for_viewer(*, user: User, pk: object) -> ActivationRequest:
    """A request the user may see (activations.selectors.request_visible_to: its requester,
    its approvers, PIM Administrators and Auditors), with what the API shows; else 404."""
    request = _requests_with_details().filter(pk=_uuid_or_404(pk)).first()
    if request is None or not request_visible_to(user=user, request=request):
        raise Http404("No such request.")
    return request


def activation_requests_for_viewer(*, user: User, pks: list[uuid.UUID]) -> list[ActivationRequest]:
    """Requests by id with what the API shows, in the order given, those the user may see."""
    found = {request.pk: request for request in _requests_with_details().filter(pk__in=pks)}
    return [found[pk] for pk in pks if pk in found and request_visible_to(user=user, request=found[pk])]


def approvals_pending_for_user(*, user: User, at: datetime | None = None) -> QuerySet[ActivationRequest]:
    """activations.selectors.approvals_pending_for_user, with what the API shows."""
    return (
        activation_selectors.approvals_pending_for_user(user=user, at=at)
        .prefetch_related("approvers__user", "approvals__approver")
        .select_related("decided_by")
    )


# --- Alerts ----------------------------------------------------------------------------------


def alerts_filtered(*, status: str = Alert.Status.OPEN, severity: str = "") -> QuerySet[Alert]:
    """Alerts in one status (open unless told), optionally of one severity (callers check
    alerts.view_alert)."""
    alerts = Alert.objects.select_related("dismissed_by").filter(status=status)
    return alerts.filter(severity=severity) if severity else alerts


def alert_get_for_viewer(*, user: User, pk: int | str) -> Alert:
    """An alert, for those who may read alerts (PIM Administrators and Auditors); anyone else
    gets the same 404 as for an alert that does not exist."""
    if not user.has_perm(ALERT_VIEW_PERMISSION):
        raise Http404("No such alert.")
    try:
        alert = Alert.objects.select_related("dismissed_by").filter(pk=int(pk)).first()
    except (TypeError, ValueError, OverflowError):
        alert = None
    if alert is None:
        raise Http404("No such alert.")
    return alert


def approvals_inbox_for_user(
    *, user: User, filters: InboxFilters, at: datetime | None = None
) -> QuerySet[ActivationRequest]:
    """activations.selectors.approvals_inbox_for_user (paged, filtered), with what the API shows."""
    return (
        activation_selectors.approvals_inbox_for_user(user=user, filters=filters, at=at)
        .prefetch_related("approvers__user", "approvals__approver")
        .select_related("decided_by")
    )
