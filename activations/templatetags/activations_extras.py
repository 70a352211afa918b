"""Template helpers of the activation pages, the navigation bar and the emails."""

from datetime import UTC, datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil

from activations.forms import duration_label
from activations.models import ActivationRequest
from activations.selectors import approvals_pending_count, request_effective_status
from common.step_up import user_is_verified

register = template.Library()


@register.filter
def relative(value: datetime | None, now: datetime | None = None) -> str:
    """When, said relative to now: "in 3 hours", "2 days ago", "now"."""
    if not isinstance(value, datetime):
        return ""
    now = now or timezone.now()
    # To the nearest minute: an end 7 hours 59 minutes 59 seconds away is "in 8 hours".
    span = timedelta(minutes=round(abs((value - now).total_seconds()) / 60))
    if span < timedelta(minutes=1):
        return "now"
    if value > now:
        return f"in {timeuntil(now + span, now, depth=1)}"
    return f"{timesince(now - span, now, depth=1)} ago"


@register.filter
def moment(value: datetime | None, now: datetime | None = None):
    """A time in the person's time zone with its zone, and how long from now; the exact UTC
    time as the element's title and datetime attribute."""
    if not isinstance(value, datetime):
        return ""
    local = timezone.localtime(value)
    utc = value.astimezone(UTC)
    return format_html(
        '<time datetime="{}" title="{} UTC">{} {}</time> <small class="muted">({})</small>',
        utc.isoformat(),
        f"{utc:%Y-%m-%d %H:%M}",
        f"{local:%Y-%m-%d %H:%M}",
        local.tzname(),
        relative(value, now),
    )


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
