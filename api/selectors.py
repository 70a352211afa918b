"""Reads for the API. Authorization lives here: the *_get_for_* selectors answer 404 for
objects the caller may not see, exactly as for objects that do not exist."""

import uuid
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import Case, DateTimeField, F, OuterRef, Q, QuerySet, Subquery, When
from django.http import Http404
from django.utils import timezone

from accounts.models import DirectoryGroup, User
from activations import selectors as activation_selectors
from activations.models import ActivationRequest
from activations.selectors import request_visible_to
from alerts.models import Alert
from alerts.services import VIEW_PERMISSION as ALERT_VIEW_PERMISSION
from roles.models import ActiveAssignment, Role
from roles.scopes import ROOT, scope_ancestors

from .models import ApiToken


def _uuid_or_404(pk) -> uuid.UUID:
    try:
        return pk if isinstance(pk, uuid.UUID) else uuid.UUID(str(pk))
    except ValueError:
        raise Http404("Not found.") from None


# --- Tokens ----------------------------------------------------------------------------------


def api_tokens_for_user(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def api_token_get_for_user(*, user: User, pk) -> ApiToken:
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


def activation_requests_for_requester(*, user: User, status: str | None = None) -> QuerySet:
    requests = _requests_with_details().filter(requester=user)
    return requests.filter(status=status) if status else requests


def activation_request_get_for_viewer(*, user: User, pk) -> ActivationRequest:
    """A request the user may see (activations.selectors.request_visible_to: its requester,
    its approvers, PIM Administrators and Auditors), with what the API shows; else 404."""
    request = _requests_with_details().filter(pk=_uuid_or_404(pk)).first()
    if request is None or not request_visible_to(user=user, request=request):
        raise Http404("No such request.")
    return request


def approvals_pending_for_user(*, user: User, at: datetime | None = None) -> QuerySet:
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


def alert_get_for_viewer(*, user: User, pk) -> Alert:
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


# --- The authorization check -----------------------------------------------------------------


class AmbiguousRole(ValidationError):
    """A template id shared by several roles (e.g. an Entra and a local one)."""


def _effective_end():
    """SQL for roles.selectors._effective_end: the earlier of ends_at and ended_at, or NULL
    (permanent) when both are NULL."""
    return Case(
        When(ends_at__isnull=True, then=F("ended_at")),
        When(ended_at__isnull=True, then=F("ends_at")),
        When(ends_at__lte=F("ended_at"), then=F("ends_at")),
        default=F("ended_at"),
        output_field=DateTimeField(),
    )


def role_check(*, username: str, role: str, scope: str = ROOT, at: datetime | None = None) -> dict:
    """Does the user hold the role at the scope at `at` (default now)? In ONE query.

    The same rule as roles.selectors.role_holding (the user is active; an assignment of
    theirs or of one of their groups covers `at`, at the scope or above it; the answer's
    end is the latest effective end, NULL meaning permanent), with the user looked up by
    username and the role by id or template id inside the same statement. An unknown user
    or role is simply not active: the answer does not say which people or roles exist.
    """
    at = at or timezone.now()
    role_match = Q(template_id=role)
    try:
        role_match |= Q(pk=uuid.UUID(role))
    except ValueError:
        pass
    groups = DirectoryGroup.members.through.objects.filter(
        user__username=username, user__is_active=True
    ).values("directorygroup_id")
    covering = (
        ActiveAssignment.objects.current(at)
        .filter(
            Q(user__username=username, user__is_active=True) | Q(group_id__in=groups),
            role_id=OuterRef("pk"),
            scope__in=scope_ancestors(scope),
        )
        .annotate(effective_end=_effective_end())
        .order_by(F("effective_end").desc(nulls_first=True), "pk")
    )
    rows = list(
        Role.objects.filter(role_match)
        .annotate(
            assignment_id=Subquery(covering.values("pk")[:1]),
            until=Subquery(covering.values("effective_end")[:1], output_field=DateTimeField()),
        )
        .values_list("assignment_id", "until")[:2]
    )
    if len(rows) > 1:
        raise AmbiguousRole({"role": "Several roles have this template id: ask with the role's id."})
    assignment_id, until = rows[0] if rows else (None, None)
    return {"active": assignment_id is not None, "until": until, "assignment": assignment_id}
