from django.shortcuts import render
from django.utils import timezone

from common.decorators import verified_required

from . import selectors


@verified_required
def my_roles(request):
    """The requester's home: what they may activate and what they hold right now."""
    # The activation pages' entry points (Activate, Extend, Renew) need the activations app's
    # reads; imported here so that the roles app itself never depends on activations.
    from activations import selectors as activation_selectors
    from activations.services import EXTEND_WINDOW

    now = timezone.now()
    eligibilities = selectors.eligibilities_for_user(user=request.user, at=now)
    active = selectors.active_assignments_for_user(user=request.user, at=now)
    context = {
        "now": now,
        "extend_before": now + EXTEND_WINDOW,
        "eligibilities": list(activation_selectors.eligibilities_with_pending_extension(eligibilities)),
        # The activation behind an assignment (reverse one-to-one, joined: no query per row).
        "active_assignments": list(active.select_related("activation_request")),
        "recently_ended": list(
            activation_selectors.eligibilities_recently_ended_for_user(user=request.user, at=now)
        ),
    }
    return render(request, "roles/my_roles.html", context)


@verified_required
def role_detail(request, pk):
    """A role's settings, owners and assignments, for its administrators and owners."""
    role = selectors.role_get_for_viewer(user=request.user, pk=pk)
    eligible, active = selectors.role_assignments(role=role)
    context = {
        "role": role,
        "role_settings": role.settings,
        "owners": list(role.owners.all()),
        "eligible": list(eligible),
        "active": list(active),
        "now": timezone.now(),
    }
    return render(request, "roles/role_detail.html", context)
