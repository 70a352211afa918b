"""Reads for the API. Authorization lives here: the *_get_for_* selectors answer 404 for
objects the caller may not see, exactly as for objects that do not exist."""

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.http import Http404

from accounts.models import User
from activations import selectors as activation_selectors
from activations.models import ActivationRequest
from activations.selectors import InboxFilters, request_visible_to
from alerts.models import Alert
from alerts.services import VIEW_PERMISSION as ALERT_VIEW_PERMISSION
from common.db import fetchone_prepared
from roles.models import Role
from roles.selectors import (
    AmbiguousRole,
    GroupAccessRef,
    Holding,
    from_db_column,
    holding_from_row,
    holding_sql,
)

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


# --- The authorization check -----------------------------------------------------------------


@dataclass(frozen=True)
class TokenCheck:
    """What the check's one statement says about the caller's token and the question."""

    token_id: uuid.UUID
    key_hash: str
    usable: bool  # not revoked, not expired, its user active and allowed to check
    last_used_at: datetime | None
    holding: Holding | None  # None: the role reference is ambiguous (the general path says so)


_CHECK_PERMISSION = "api.check_role"


def check_for_token(
    *, prefix: str, user: str, role: str | GroupAccessRef, scope: str, at: datetime
) -> TokenCheck | None:
    """The API check in ONE statement: the token found by its prefix, whether it may ask
    (not revoked or expired, its user active and holding a portal role that grants
    api.check_role at the root now, or a superuser: what ApiTokenAuthentication and
    CanCheckRoles decide) and the answer (roles.selectors.holding_sql). None when no token
    has the prefix, or on a database this statement is not written for; the caller then
    takes the general path, which gives every refusal its usual answer."""
    vendor = connection.vendor
    if vendor == "postgresql":
        grants = "r.grants_permissions @> %s::jsonb"
        grant_param = json.dumps([_CHECK_PERMISSION])
    elif vendor == "sqlite":
        grants = "EXISTS (SELECT 1 FROM json_each(r.grants_permissions) g WHERE g.value = %s)"
        grant_param = _CHECK_PERMISSION
    else:
        return None
    when = connection.ops.adapt_datetimefield_value(at)
    live = (
        "a.scope = '/' AND a.starts_at <= %s AND (a.ends_at IS NULL OR a.ends_at > %s) "
        f"AND (a.ended_at IS NULL OR a.ended_at > %s) AND {grants}"
    )
    live_params = [when, when, when, grant_param]
    holding_select, holding_params = holding_sql(user=user, role=role, scope=scope, at=at)
    # The caller's permission: its own assignments and its groups' as two index lookups.
    sql = (
        "SELECT t.id, t.key_hash, t.last_used_at, "  # noqa: S608 - fixed fragments, bound values
        "(t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > %s) AND u.is_active "
        "AND (u.is_superuser OR EXISTS ("
        "SELECT 1 FROM roles_activeassignment a JOIN roles_role r ON r.id = a.role_id "
        f"WHERE a.user_id = u.id AND {live} "
        "UNION ALL "
        "SELECT 1 FROM roles_activeassignment a JOIN roles_role r ON r.id = a.role_id "
        "WHERE a.group_id IN (SELECT m.directorygroup_id FROM accounts_directorygroup_members m "
        f"WHERE m.user_id = u.id) AND {live}))) AS usable, "
        "h.named, h.id, h.until "
        "FROM api_apitoken t JOIN accounts_user u ON u.id = t.user_id "
        f"CROSS JOIN ({holding_select}) h WHERE t.prefix = %s"
    )
    params: list[Any] = [when, *live_params, *live_params, *holding_params, prefix]
    row = fetchone_prepared(sql, params)
    if row is None:
        return None
    token_id, key_hash, last_used_at, usable = row[:4]
    try:
        holding: Holding | None = holding_from_row(row, offset=4)
    except AmbiguousRole:
        holding = None
    fields = ApiToken._meta
    return TokenCheck(
        token_id=from_db_column(fields.get_field("id"), token_id),
        key_hash=key_hash,
        usable=bool(usable),
        last_used_at=from_db_column(fields.get_field("last_used_at"), last_used_at),
        holding=holding,
    )


def approvals_inbox_for_user(
    *, user: User, filters: InboxFilters, at: datetime | None = None
) -> QuerySet[ActivationRequest]:
    """activations.selectors.approvals_inbox_for_user (paged, filtered), with what the API shows."""
    return (
        activation_selectors.approvals_inbox_for_user(user=user, filters=filters, at=at)
        .prefetch_related("approvers__user", "approvals__approver")
        .select_related("decided_by")
    )
