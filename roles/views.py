from django.shortcuts import render
from django.utils import timezone

from accounts.decorators import verified_required

from . import selectors


@verified_required
def my_roles(request):
    """The requester's home: what they may activate and what they hold right now."""
    now = timezone.now()
    context = {
        "now": now,
        "eligibilities": list(selectors.eligibilities_for_user(user=request.user, at=now)),
        "active_assignments": list(selectors.active_assignments_for_user(user=request.user, at=now)),
    }
    return render(request, "roles/my_roles.html", context)
