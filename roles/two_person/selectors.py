"""Reads about pending changes (the two-person rule). Authorization lives here: people who may
not see pending changes get 404, as if there were none."""

import uuid

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import User

from ..models import PendingChange, Role

RECENT = 50


def user_may_see_pending_changes(*, user: User) -> bool:
    """PIM Administrators while their portal role is active (it grants this permission)."""
    return user.is_active and user.has_perm("roles.change_rolesettings")


def pending_changes_for_user(*, user: User) -> tuple[QuerySet[PendingChange], QuerySet[PendingChange]]:
    """The changes waiting (oldest first) and the most recently closed ones, else 404."""
    if not user_may_see_pending_changes(user=user):
        raise Http404("No such page.")
    base = PendingChange.objects.select_related("role", "proposer", "decided_by")
    waiting = base.filter(status=PendingChange.Status.PENDING).order_by("decide_by")
    closed = base.exclude(status=PendingChange.Status.PENDING).order_by("-decided_at")[:RECENT]
    return waiting, closed


def pending_change_get_for_user(*, user: User, pk: uuid.UUID | str) -> PendingChange:
    """A pending change the user may see, else 404."""
    change = PendingChange.objects.select_related("role", "proposer", "decided_by").filter(pk=pk).first()
    if change is None or not user_may_see_pending_changes(user=user):
        raise Http404("No such change.")
    return change


def pending_changes_open(*, role: Role | None = None) -> QuerySet[PendingChange]:
    """Changes still waiting for a decision (pending and not past their deadline), of one role
    or of all."""
    waiting = PendingChange.objects.filter(status=PendingChange.Status.PENDING, decide_by__gt=timezone.now())
    return waiting if role is None else waiting.filter(role=role)


def pending_changes_waiting_for(*, user: User) -> int:
    """How many changes wait for someone other than the user (the navigation badge)."""
    if not user_may_see_pending_changes(user=user):
        return 0
    return pending_changes_open().exclude(proposer=user).count()
