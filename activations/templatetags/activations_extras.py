"""Template helpers of the activation pages, the navigation bar and the emails."""

from datetime import timedelta

from django import template

from activations.forms import duration_label
from activations.models import ActivationRequest
from activations.selectors import approvals_pending_count, request_effective_status
from common.step_up import user_is_verified

register = template.Library()
Status = ActivationRequest.Status


@register.filter
def duration(value) -> str:
    """A timedelta as people say it: 8 hours, 1 hour 30 minutes, 90 days."""
    return duration_label(value) if isinstance(value, timedelta) else ""


KIND_LABELS: dict[str, str] = {
    ActivationRequest.Kind.ACTIVATE: "Activation",
    ActivationRequest.Kind.EXTEND: "Extension",
    ActivationRequest.Kind.RENEW: "Renewal",
}


@register.filter
def kind_label(activation: ActivationRequest) -> str:
    """The kind as a noun ("Activation of Vault", not "Activate of Vault")."""
    return KIND_LABELS.get(activation.kind, activation.get_kind_display())


@register.filter
def effective_status(activation: ActivationRequest, now) -> str:
    """The status as it is at `now` (activations.selectors.request_effective_status)."""
    return request_effective_status(activation, now)


@register.filter
def status_label(status: str) -> str:
    try:
        return Status(status).label
    except ValueError:
        return status


@register.simple_tag(takes_context=True)
def pending_approvals(context) -> int:
    """How many requests wait for the signed-in user's decision (one COUNT query)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user_is_verified(user):
        return 0  # nothing about approvals before the session is MFA-verified
    return approvals_pending_count(user=user)
