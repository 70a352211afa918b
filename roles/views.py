from django.shortcuts import render
from django.utils import timezone

from common.decorators import verified_required

from . import selectors


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
