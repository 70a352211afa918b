"""Reads about activation requests. Authorization lives here: the *_get_for_* selectors answer
404 for objects the user may not see (same as not found)."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from roles import selectors as role_selectors
from roles.directory_selectors import directory_statuses
from roles.models import ActiveAssignment, EligibleAssignment, Role

from .models import ActivationRequest, Approval, RequestApprover
from .services import EXTEND_WINDOW, MAX_BULK_ITEMS, RENEW_WINDOW

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


def eligibilities_get_for_requester(
    *, user: User, pks: list[str], at: datetime | None = None
) -> list[EligibleAssignment]:
    """The eligibilities among `pks` the user holds now, in the order given (others, and ids
    that are not ids, are left out), each with its role's settings."""
    at = at or timezone.now()
    ids = []
    for pk in pks[:MAX_BULK_ITEMS]:
        try:
            ids.append(uuid.UUID(str(pk)))
        except ValueError:
            continue
    found = {
        eligible.pk: eligible
        for eligible in EligibleAssignment.objects.for_user(user)
        .current(at)
        .select_related("role__settings", "group")
        .filter(pk__in=ids)
    }
    return [found[pk] for pk in dict.fromkeys(ids) if pk in found]


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


def active_get_own(*, user: User, pk: uuid.UUID | str) -> ActiveAssignment:
    """One of the user's own direct (not group, not activation) active assignments, current or
    ended, else 404: only those can be extended or renewed by the user."""
    assignment = (
        ActiveAssignment.objects.select_related("role__settings")
        .filter(pk=pk, user_id=user.pk, origin=ActiveAssignment.Origin.DIRECT)
        .first()
    )
    if assignment is None:
        raise Http404("No such active assignment.")
    return assignment


# --- My roles: the Eligible, Active and Expired tabs -----------------------------------------


@dataclass(frozen=True)
class MyRoles:
    """What the requester's My roles page shows, each row carrying what its buttons need:

    - eligible: each eligibility with `pending` (the activation request waiting for approval
      at its role and scope, approvers prefetched, or None), `active_until` (the end of the
      access held at that role and scope now: Activate is not offered then; None: not active;
      `permanent_active` when held without an end), `extension_pending`, `can_extend`;
    - active: each assignment held now with `activation_request` (joined), `can_extend` and
      `extension_pending` (a direct assignment of one's own ending within 14 days);
    - expired_eligible / expired_active: one's own ended within the last 30 days, with
      `renewal_pending`.
    """

    eligible: Sequence[EligibleAssignment]
    active: Sequence[ActiveAssignment]
    expired_eligible: Sequence[EligibleAssignment]
    expired_active: Sequence[ActiveAssignment]

    @property
    def expired_count(self) -> int:
        return len(self.expired_eligible) + len(self.expired_active)


def _pending_change_of_active(kind: str) -> Exists:
    return Exists(
        ActivationRequest.objects.filter(
            active_target=OuterRef("pk"), kind=kind, status=Status.PENDING_APPROVAL
        )
    )


def my_roles_for_user(*, user: User, at: datetime | None = None) -> MyRoles:
    """The My roles page in a fixed number of queries, whatever the number of roles."""
    at = at or timezone.now()
    extend_before = at + EXTEND_WINDOW
    active = list(
        role_selectors.active_assignments_for_user(user=user, at=at)
        .select_related("activation_request")
        .annotate(extension_pending=_pending_change_of_active(Kind.EXTEND))
    )
    held: dict[tuple[uuid.UUID, str], ActiveAssignment] = {}
    for assignment in active:
        assignment.can_extend = _extendable(assignment, user, extend_before) and assignment.starts_at <= at  # type: ignore[attr-defined]
        key = (assignment.role_id, assignment.scope)
        if assignment.starts_at <= at and (key not in held or _ends_later(assignment, held[key])):
            held[key] = assignment
    pending = _pending_activations_by_role(user=user, at=at)
    eligible = list(
        eligibilities_with_pending_extension(role_selectors.eligibilities_for_user(user=user, at=at))
    )
    in_directory = directory_statuses(assignments=eligible)
    for eligibility in eligible:
        eligibility.directory = in_directory.get(eligibility.pk)  # type: ignore[attr-defined]
        key = (eligibility.role_id, eligibility.scope)
        holding = held.get(key)
        eligibility.pending = pending.get(key)  # type: ignore[attr-defined]
        eligibility.active = holding is not None  # type: ignore[attr-defined]
        eligibility.active_until = holding.ends_at if holding else None  # type: ignore[attr-defined]
        eligibility.can_extend = _extendable(eligibility, user, extend_before)  # type: ignore[attr-defined]
    return MyRoles(
        eligible=eligible,
        active=active,
        expired_eligible=list(eligibilities_recently_ended_for_user(user=user, at=at)),
        expired_active=list(active_assignments_recently_ended_for_user(user=user, at=at)),
    )


def _extendable(assignment: EligibleAssignment | ActiveAssignment, user: User, before: datetime) -> bool:
    """One's own (not a group's) time-bound assignment ending within the extension window; for
    active ones, only direct assignments (an activation is activated again instead)."""
    if assignment.user_id != user.pk or assignment.ends_at is None or assignment.ends_at > before:
        return False
    return not isinstance(assignment, ActiveAssignment) or assignment.origin == ActiveAssignment.Origin.DIRECT


def _ends_later(one: ActiveAssignment, other: ActiveAssignment) -> bool:
    if other.ends_at is None:
        return False
    return one.ends_at is None or one.ends_at > other.ends_at


def _pending_activations_by_role(
    *, user: User, at: datetime
) -> dict[tuple[uuid.UUID, str], ActivationRequest]:
    """The user's activation requests waiting for approval, by role and scope, each with its
    approvers (two queries)."""
    requests = (
        ActivationRequest.objects.filter(
            requester=user, kind=Kind.ACTIVATE, status=Status.PENDING_APPROVAL, decide_by__gt=at
        )
        .prefetch_related(
            Prefetch(
                "approvers",
                queryset=RequestApprover.objects.select_related("user").order_by("user__username"),
            )
        )
        .order_by("created_at")
    )
    return {(request.role_id, request.scope): request for request in requests}


def active_assignments_recently_ended_for_user(
    *, user: User, at: datetime | None = None
) -> QuerySet[ActiveAssignment]:
    """The user's own direct active assignments that reached their end within the renewal
    window (30 days) and were not removed nor renewed since; each marked with whether a renewal
    is waiting."""
    at = at or timezone.now()
    renewed = ActiveAssignment.objects.filter(
        user_id=user.pk, role_id=OuterRef("role_id"), scope=OuterRef("scope")
    ).current(at)
    return (
        ActiveAssignment.objects.filter(
            user_id=user.pk,
            origin=ActiveAssignment.Origin.DIRECT,
            ends_at__gte=at - RENEW_WINDOW,
            ends_at__lte=at,
        )
        .filter(Q(ended_at__isnull=True) | Q(end_reason=ActiveAssignment.EndReason.EXPIRED))
        .exclude(Exists(renewed))
        .select_related("role")
        .annotate(renewal_pending=_pending_change_of_active(Kind.RENEW))
        .order_by("-ends_at", "pk")
    )


# --- The approvals inbox, paged and filtered ---------------------------------------------------


@dataclass(frozen=True)
class InboxFilters:
    """What the inbox (and /api/v1/approvals/) may be narrowed to: a role, a requester (by
    username), requests waiting at least `older_than`."""

    role: uuid.UUID | None = None
    requester: str = ""
    older_than: timedelta | None = None


def approvals_inbox_for_user(
    *, user: User, filters: InboxFilters = InboxFilters(), at: datetime | None = None
) -> QuerySet[ActivationRequest]:
    """approvals_pending_for_user narrowed by the filters, oldest first (a fixed number of
    queries per page: requester and role joined, approvals counted in the same query)."""
    at = at or timezone.now()
    pending = approvals_pending_for_user(user=user, at=at)
    if filters.role:
        pending = pending.filter(role_id=filters.role)
    if filters.requester:
        pending = pending.filter(requester__username=filters.requester)
    if filters.older_than:
        pending = pending.filter(created_at__lte=at - filters.older_than)
    return pending


def approvals_inbox_choices(*, user: User, at: datetime | None = None) -> tuple[list[Role], list[User]]:
    """The roles and requesters of the requests waiting for the user (the inbox's filter
    choices; two queries)."""
    at = at or timezone.now()
    pending = approvals_pending_for_user(user=user, at=at).values("pk")
    roles = list(Role.objects.filter(pk__in=pending.values("role_id")).order_by("name"))
    requesters = list(User.objects.filter(pk__in=pending.values("requester_id")).order_by("username"))
    return roles, requesters


def requests_get_for_decision(
    *, user: User, pks: list[uuid.UUID]
) -> tuple[list[ActivationRequest], list[uuid.UUID]]:
    """The requests among `pks` the user may see, in the order given, and the ids of the others
    (missing, or not the user's to see: told apart from nothing, like a 404)."""
    found = {
        request.pk: request
        for request in ActivationRequest.objects.select_related("requester", "role").filter(pk__in=pks)
    }
    approver_of = set(
        RequestApprover.objects.filter(user=user, request_id__in=list(found)).values_list(
            "request_id", flat=True
        )
    )
    sees_all = user.has_perm("roles.view_role")
    visible, unknown = [], []
    for pk in dict.fromkeys(pks):
        request = found.get(pk)
        if request is not None and (sees_all or request.requester_id == user.pk or pk in approver_of):
            visible.append(request)
        else:
            unknown.append(pk)
    return visible, unknown
