"""The dashboard: for PIM Administrators and Auditors (audit.view_dashboard), else 404."""

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from common.decorators import verified_required

from . import dashboard as charts

VIEW_PERMISSION = "audit.view_dashboard"


@never_cache
@require_safe
@verified_required
def dashboard(request):
    if not request.user.has_perm(VIEW_PERMISSION):
        raise Http404("No such page.")
    return render(request, "audit/dashboard.html", {"dashboard": charts.dashboard_data()})
