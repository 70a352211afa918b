"""Reads about activation requests. Authorization lives here: the *_get_for_* selectors answer
404 for objects the user may not see (same as not found)."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from roles.models import EligibleAssignment

from .models import ActivationRequest, Approval, RequestApprover
from .services import RENEW_WINDOW

Status = ActivationRequest.Status
Kind = ActivationRequest.Kind
RECENT_ACTIVATIONS = 5


# --- Requests ------------------------------------------------------------------------------


def request_visible_to(*, user: User, request: ActivationRequest) -> bool:
    """The requester, the request's approvers and PIM Administrators / Auditors see a request."""
    if request.requester_id == user.pk or user.has_perm("roles.view_role"):
        return True
    return RequestApprover.objects.filter(request=request, user=user).exists()


def request_get(*, pk: uuid.UUID | str) -> ActivationRequest:
    """A request by id with what its page shows, whoever asks (authorization is the caller's:
    use request_get_for_user unless the caller checks request_visible_to itself)."""
    request = (
        ActivationRequest.objects.select_related(
            "requester", "role", "eligible", "decided_by", "active_assignment"
        )
        .filter(pk=pk)
        .first()
    )
    if request is None:
        raise Http404("No such request.")
    return request


def request_get_for_user(*, user: User, pk: uuid.UUID | str) -> ActivationRequest:
    """A request the user may see, else 404."""
    request = request_get(pk=pk)
    if not request_visible_to(user=user, request=request):
        raise Http404("No such request.")
    return request


def requests_for_user(*, user: User) -> QuerySet[ActivationRequest]:
    """The user's own requests, newest first (uses activations_requester_idx)."""
    return (
        ActivationRequest.objects.filter(requester=user).select_related("role").order_by("-created_at", "-pk")
    )


def request_approvals(*, request: ActivationRequest) -> list[Approval]:
    return list(request.approvals.select_related("approver").order_by("decided_at", "pk"))


def request_approver_users(*, request: ActivationRequest) -> list[User]:
    return list(User.objects.filter(pk__in=request.approvers.values("user_id")).order_by("username"))


def request_recent_activations(*, request: ActivationRequest) -> list[ActivationRequest]:
    """The requester's latest activations of the same role (what an approver wants to know)."""
    return list(
        ActivationRequest.objects.filter(requester_id=request.requester_id, role_id=request.role_id)
        .filter(kind=Kind.ACTIVATE)
        .exclude(pk=request.pk)
        .order_by("-created_at", "-pk")[:RECENT_ACTIVATIONS]
    )


def request_effective_status(request: ActivationRequest, at: datetime) -> str:
    """The status as it is at `at`: a granted activation past its end has expired and a
    pending request past its deadline has timed out, whether or not the jobs have run yet."""
    if request.status == Status.GRANTED and request.ends_at and request.ends_at <= at:
        return Status.EXPIRED
    if request.status == Status.PENDING_APPROVAL and request.decide_by and request.decide_by <= at:
        return Status.TIMED_OUT
    return request.status


def request_is_pending(request: ActivationRequest, at: datetime) -> bool:
    """Still waiting for a decision (pending, before its deadline)."""
    return request_effective_status(request, at) == Status.PENDING_APPROVAL


def request_is_live(request: ActivationRequest, at: datetime) -> bool:
    """A granted activation whose access has not reached its end (it may start later)."""
    return request.ends_at is not None and request_effective_status(request, at) == Status.GRANTED


@dataclass(frozen=True)
class RequestActions:
    """What the viewer may do with a request now: the buttons its page and lists offer. The
    services check it all again when the button is pressed."""

    decide: bool = False
    cancel: bool = False
    deactivate: bool = False
    revoke: bool = False


def request_actions(*, user: User, request: ActivationRequest, at: datetime | None = None) -> RequestActions:
    """The one answer to "which buttons does this person get on this request": decide (a
    frozen approver who has not decided a pending request), cancel (the requester or a PIM
    Administrator, while pending), deactivate (the requester, while their activation is live)
    and revoke (a PIM Administrator, while an activation is live)."""
    at = at or timezone.now()
    is_requester = request.requester_id == user.pk
    pending = request_is_pending(request, at)
    live_activation = request.kind == Kind.ACTIVATE and request_is_live(request, at)
    is_admin = user.has_perm("roles.manage_active_assignments")
    return RequestActions(
        decide=request_awaits_decision_by(user=user, request=request, at=at),
        cancel=pending and (is_requester or is_admin),
        deactivate=live_activation and is_requester,
        revoke=live_activation and is_admin,
    )


def request_awaits_decision_by(*, user: User, request: ActivationRequest, at: datetime | None = None) -> bool:
    """Whether the user is a (frozen) approver of the still-pending request who has not decided."""
    at = at or timezone.now()
    if request.status != Status.PENDING_APPROVAL or request.decide_by is None or at >= request.decide_by:
        return False
    if request.requester_id == user.pk or not user.is_active:
        return False
    return (
        RequestApprover.objects.filter(request=request, user=user).exists()
        and not Approval.objects.filter(request=request, approver=user).exists()
    )


# --- Approvals inbox -----------------------------------------------------------------------


def approvals_pending_for_user(*, user: User, at: datetime | None = None) -> QuerySet[ActivationRequest]:
    """Requests waiting for the user's decision, oldest first: pending, not past their
    deadline, the user is one of their frozen approvers and has not decided yet."""
    at = at or timezone.now()
    return (
        ActivationRequest.objects.filter(status=Status.PENDING_APPROVAL, decide_by__gt=at)
        .filter(Exists(RequestApprover.objects.filter(request=OuterRef("pk"), user=user)))
        .exclude(Exists(Approval.objects.filter(request=OuterRef("pk"), approver=user)))
        .select_related("requester", "role")
        .annotate(approvals_given=Count("approvals", filter=Q(approvals__decision=Approval.Decision.APPROVE)))
        .order_by("created_at", "pk")
    )


def approvals_pending_count(*, user: User, at: datetime | None = None) -> int:
    at = at or timezone.now()
    return (
        ActivationRequest.objects.filter(status=Status.PENDING_APPROVAL, decide_by__gt=at)
        .filter(Exists(RequestApprover.objects.filter(request=OuterRef("pk"), user=user)))
        .exclude(Exists(Approval.objects.filter(request=OuterRef("pk"), approver=user)))
        .count()
    )


# --- Eligibilities (activation, extension, renewal) ----------------------------------------


def eligible_get_for_requester(
    *, user: User, pk: uuid.UUID | str, at: datetime | None = None
) -> EligibleAssignment:
    """An eligibility the user holds now (directly or through a group), else 404."""
    at = at or timezone.now()
    eligible = (
        EligibleAssignment.objects.for_user(user)
        .current(at)
        .select_related("role__settings", "group")
        .filter(pk=pk)
        .first()
    )
    if eligible is None:
        raise Http404("No such eligibility.")
    return eligible


def eligible_get_own(*, user: User, pk: uuid.UUID | str) -> EligibleAssignment:
    """One of the user's own (direct, not group) eligibilities, current or ended, else 404:
    only those can be extended or renewed by the user (as in Entra)."""
    eligible = (
        EligibleAssignment.objects.select_related("role__settings").filter(pk=pk, user_id=user.pk).first()
    )
    if eligible is None:
        raise Http404("No such eligibility.")
    return eligible


def _pending_change(kind: str) -> Exists:
    return Exists(
        ActivationRequest.objects.filter(eligible=OuterRef("pk"), kind=kind, status=Status.PENDING_APPROVAL)
    )


def eligibilities_with_pending_extension(
    queryset: QuerySet[EligibleAssignment],
) -> QuerySet[EligibleAssignment]:
    """Mark each eligibility with whether an extension request for it is waiting (no extra query)."""
    return queryset.annotate(extension_pending=_pending_change(Kind.EXTEND))


def eligibilities_recently_ended_for_user(
    *, user: User, at: datetime | None = None
) -> QuerySet[EligibleAssignment]:
    """The user's own eligibilities that reached their end within the renewal window (30 days)
    and were not removed nor renewed since; each marked with whether a renewal is waiting."""
    at = at or timezone.now()
    renewed = EligibleAssignment.objects.filter(
        user_id=user.pk, role_id=OuterRef("role_id"), scope=OuterRef("scope")
    ).current(at)
    return (
        EligibleAssignment.objects.filter(user_id=user.pk, ends_at__gte=at - RENEW_WINDOW, ends_at__lte=at)
        .filter(Q(ended_at__isnull=True) | Q(end_reason=EligibleAssignment.EndReason.EXPIRED))
        .exclude(Exists(renewed))
        .select_related("role")
        .annotate(renewal_pending=_pending_change(Kind.RENEW))
        .order_by("-ends_at", "pk")
    )
