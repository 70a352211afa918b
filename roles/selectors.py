"""Reads about roles and assignments. Authorization lives here: the *_get_for_* selectors
answer 404 for objects the user may not see."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import DirectoryGroup, User

from .models import ActiveAssignment, EligibleAssignment, Role
from .scopes import ROOT, scope_ancestors

PIM_ADMINISTRATOR = "pim.administrator"
PIM_AUDITOR = "pim.auditor"


@dataclass(frozen=True)
class Holding:
    """The answer to "does the user hold the role at the scope at that time"."""

    active: bool
    until: datetime | None = None  # None with active=True: permanent
    assignment: ActiveAssignment | None = None


def role_holding(*, user: User, role: Role, scope: str = ROOT, at: datetime | None = None) -> Holding:
    """The one rule: a principal holds a role at a scope at time T iff an active assignment
    (theirs or one of their groups') covers T and was not ended before T. Exact at every read."""
    at = at or timezone.now()
    if not user.is_active:
        return Holding(active=False)
    covering = list(
        ActiveAssignment.objects.for_user(user)
        .current(at)
        .filter(role=role, scope__in=scope_ancestors(scope))
        .only("id", "ends_at", "ended_at", "role_id", "scope", "user_id", "group_id")
    )
    if not covering:
        return Holding(active=False)
    best = max(covering, key=_effective_end_key)
    return Holding(active=True, until=_effective_end(best), assignment=best)


def user_holds_role(*, user: User, role: Role, scope: str = ROOT, at: datetime | None = None) -> bool:
    return role_holding(user=user, role=role, scope=scope, at=at).active


def _effective_end(assignment) -> datetime | None:
    ends = [moment for moment in (assignment.ends_at, assignment.ended_at) if moment is not None]
    return min(ends) if ends else None


def _effective_end_key(assignment):
    end = _effective_end(assignment)
    return (end is None, end or timezone.now())


def role_ids_named(*, text: str, limit: int = 2) -> list[uuid.UUID]:
    """The ids of at most ``limit`` roles that the text names: their name or template id (in
    any case) or their id. The audit explorer's role filter finds roles with it."""
    query = Q(name__iexact=text) | Q(template_id__iexact=text)
    try:
        query |= Q(pk=uuid.UUID(text))
    except ValueError:
        pass
    return list(Role.objects.filter(query).values_list("pk", flat=True)[:limit])


def portal_role(template_id: str) -> Role:
    return Role.objects.get(kind=Role.Kind.APP, template_id=template_id)


def permissions_from_active_roles(*, user: User, at: datetime | None = None) -> set[str]:
    """Django permissions granted by the portal roles the user holds at the root, right now."""
    if not user.is_active:
        return set()
    at = at or timezone.now()
    role_ids = ActiveAssignment.objects.for_user(user).current(at).filter(scope=ROOT).values("role_id")
    grants = (
        Role.objects.filter(pk__in=role_ids)
        .exclude(grants_permissions=[])
        .values_list("grants_permissions", flat=True)
    )
    return {permission for role_grants in grants for permission in role_grants}


def eligibilities_for_user(*, user: User, at: datetime | None = None) -> QuerySet[EligibleAssignment]:
    """The user's eligible assignments in force now (direct and through groups)."""
    at = at or timezone.now()
    return (
        EligibleAssignment.objects.for_user(user)
        .current(at)
        .select_related("role", "group")
        .order_by("role__name", "scope")
    )


def active_assignments_for_user(*, user: User, at: datetime | None = None) -> QuerySet[ActiveAssignment]:
    at = at or timezone.now()
    return (
        ActiveAssignment.objects.for_user(user)
        .current(at)
        .select_related("role", "group")
        .order_by("role__name", "scope")
    )


def user_can_manage_eligible(*, user: User, role: Role) -> bool:
    """PIM Administrators manage every role's eligibilities; a role's owners manage its own."""
    return user.has_perm("roles.manage_eligible_assignments") or user.has_perm(
        "roles.manage_eligible_assignments", role
    )


def user_can_manage_active(*, user: User, role: Role) -> bool:
    return user.has_perm("roles.manage_active_assignments")


def role_get_for_viewer(*, user: User, pk) -> Role:
    """A role whose assignments the user may see (PIM Administrators and Auditors while
    active, the role's owners), else 404."""
    role = Role.objects.select_related("settings").filter(pk=pk).first()
    if role is None or not (
        user.has_perm("roles.view_role") or user_can_manage_eligible(user=user, role=role)
    ):
        raise Http404("No such role.")
    return role


def role_assignments(*, role: Role, at: datetime | None = None) -> tuple[QuerySet, QuerySet]:
    """The role's current and future eligible and active assignments, for its detail page."""
    at = at or timezone.now()
    still_open = (Q(ends_at__isnull=True) | Q(ends_at__gt=at)) & Q(ended_at__isnull=True)
    related = ("user", "group")
    eligible = (
        EligibleAssignment.objects.filter(still_open, role=role)
        .select_related(*related)
        .order_by("starts_at")
    )
    active = (
        ActiveAssignment.objects.filter(still_open, role=role).select_related(*related).order_by("starts_at")
    )
    return eligible, active


def eligible_get_for_manager(*, user: User, pk) -> EligibleAssignment:
    """An eligible assignment the user may manage, else 404 (as if it did not exist)."""
    assignment = EligibleAssignment.objects.select_related("role", "user", "group").filter(pk=pk).first()
    if assignment is None or not user_can_manage_eligible(user=user, role=assignment.role):
        raise Http404("No such assignment.")
    return assignment


def active_get_for_manager(*, user: User, pk) -> ActiveAssignment:
    assignment = ActiveAssignment.objects.select_related("role", "user", "group").filter(pk=pk).first()
    if assignment is None or not user_can_manage_active(user=user, role=assignment.role):
        raise Http404("No such assignment.")
    return assignment


def role_holders(*, role: Role, at: datetime | None = None) -> tuple[QuerySet, QuerySet]:
    """Current eligible and active assignments of the role whose principal can use them
    (an active user, or a group with at least one active member)."""
    at = at or timezone.now()
    usable = Q(user__is_active=True) | Q(
        group__in=DirectoryGroup.objects.filter(members__is_active=True).values("pk")
    )
    eligible = EligibleAssignment.objects.filter(role=role).current(at).filter(usable)
    active = ActiveAssignment.objects.filter(role=role).current(at).filter(usable)
    return eligible, active


def pim_administrators(*, at: datetime | None = None) -> QuerySet[User]:
    """People eligible for or holding the PIM Administrator role now (fallback approvers)."""
    at = at or timezone.now()
    role = portal_role(PIM_ADMINISTRATOR)
    eligible, active = role_holders(role=role, at=at)
    return User.objects.filter(
        Q(pk__in=eligible.values("user_id"))
        | Q(pk__in=active.values("user_id"))
        | Q(directory_groups__pk__in=eligible.values("group_id"))
        | Q(directory_groups__pk__in=active.values("group_id")),
        is_active=True,
    ).distinct()
