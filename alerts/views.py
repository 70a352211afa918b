"""Alert pages: the list (open by severity, dismissed, resolved), one alert with its items, fix
buttons and dismiss form, and "Evaluate now". PIM Administrators and Auditors read them
(alerts.view_alert); only PIM Administrators (alerts.manage_alert) dismiss, fix and evaluate,
with a fresh step-up for the changes. And the dashboard, for PIM Administrators and Auditors
(alerts.view_dashboard). Everyone else gets a 404."""

from functools import wraps

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, Count, IntegerField, Q, Value, When
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from common.decorators import verification_redirect, verified_required

from . import services as alerts
from .dashboard import dashboard_data
from .fixes import FIXES
from .models import Alert
from .rules import KINDS

DASHBOARD_PERMISSION = "alerts.view_dashboard"

TABS = {
    "open": (Alert.Status.OPEN,),
    "dismissed": (Alert.Status.DISMISSED,),
    "resolved": (Alert.Status.RESOLVED,),
}
RESOLVED_SHOWN = 50


def _check(user, permission: str) -> None:
    if not user.has_perm(permission):
        raise Http404("No such page.")


def alert_reader_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        _check(request.user, alerts.VIEW_PERMISSION)
        return view(request, *args, **kwargs)

    return never_cache(verified_required(wrapper))


def alert_manager_required(view, *, step_up: bool = False):
    """Verified, allowed to manage alerts (else 404), and for changes a fresh step-up."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        early = verification_redirect(request)
        if early:
            return early
        _check(request.user, alerts.MANAGE_PERMISSION)
        return verification_redirect(request, step_up=step_up) or view(request, *args, **kwargs)

    return never_cache(wrapper)


_SEVERITY_RANK = Case(
    *(When(severity=severity, then=Value(rank)) for severity, rank in Alert.SEVERITY_ORDER.items()),
    output_field=IntegerField(),
)


@require_safe
@alert_reader_required
def alert_list(request):
    tab = request.GET.get("tab", "open")
    if tab not in TABS:
        tab = "open"
    shown = Alert.objects.filter(status__in=TABS[tab]).defer("dismissed_items")
    if tab == "resolved":
        shown = shown.order_by("-resolved_at")[:RESOLVED_SHOWN]
    else:
        shown = shown.annotate(rank=_SEVERITY_RANK).order_by("rank", "-first_raised_at")
    summary = Alert.objects.aggregate(
        open=Count("pk", filter=Q(status=Alert.Status.OPEN)),
        dismissed=Count("pk", filter=Q(status=Alert.Status.DISMISSED)),
    )
    summary["last_evaluated_at"] = alerts.alerts_last_evaluated_at()
    context = {
        "tab": tab,
        "alerts": [(alert, KINDS.get(alert.kind)) for alert in shown],
        "summary": summary,
        "can_manage": request.user.has_perm(alerts.MANAGE_PERMISSION),
    }
    return render(request, "alerts/alert_list.html", context)


@require_safe
@alert_reader_required
def alert_detail(request, pk):
    alert = Alert.objects.select_related("dismissed_by").filter(pk=pk).first()
    if alert is None:
        raise Http404("No such alert.")
    context = {
        "alert": alert,
        "definition": KINDS.get(alert.kind),
        "fixable": alert.kind in FIXES and alert.status != Alert.Status.RESOLVED,
        "can_manage": request.user.has_perm(alerts.MANAGE_PERMISSION),
    }
    return render(request, "alerts/alert_detail.html", context)


@require_POST
@alert_manager_required
def alert_evaluate(request):
    result = alerts.alerts_evaluate(actor=request.user)
    messages.success(request, f"Alerts evaluated: {result}.")
    return redirect("alerts:alert_list")


def _alert_or_404(pk) -> Alert:
    alert = Alert.objects.filter(pk=pk).first()
    if alert is None:
        raise Http404("No such alert.")
    return alert


def _error_text(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error) or "You may not do this."


def _manager_action(view):
    # GET is answered too: after a step-up detour the browser comes back with a GET.
    return require_http_methods(["GET", "POST"])(alert_manager_required(view, step_up=True))


@_manager_action
def alert_dismiss(request, pk):
    alert = _alert_or_404(pk)
    if request.method == "POST":
        try:
            alerts.alert_dismiss(actor=request.user, alert=alert, reason=request.POST.get("reason", ""))
        except (ValidationError, PermissionDenied) as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(request, "Alert dismissed.")
    return redirect(alert)


@_manager_action
def alert_fix(request, pk):
    alert = _alert_or_404(pk)
    if request.method == "POST":
        try:
            done = alerts.alert_fix(actor=request.user, alert=alert, item_id=request.POST.get("item", ""))
        except (ValidationError, PermissionDenied) as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(request, done)
    return redirect(alert)


@never_cache
@require_safe
@verified_required
def dashboard(request):
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        raise Http404("No such page.")
    context = {"dashboard": dashboard_data(), "alerts_evaluated_at": alerts.alerts_last_evaluated_at()}
    return render(request, "alerts/dashboard.html", context)
