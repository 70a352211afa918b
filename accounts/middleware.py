"""Session middleware of the accounts app: the idle timeout, the break-glass account's every
request in the audit log, and the provider's MFA where it is trusted for signing in."""

from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib import auth, messages
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from . import services
from .sso import PROVIDER_MFA_SESSION_KEY, ProviderMfa

LAST_SEEN_SESSION_KEY = "pim_last_seen_at"
# The last-seen time is written at most this often: not a session write on every request.
_LAST_SEEN_RESOLUTION = timedelta(seconds=30)


class SessionIdleMiddleware:
    """Ends a session unused for PIM_SESSION_IDLE_SECONDS (besides the absolute lifetime,
    PIM_SESSION_AGE_SECONDS, which Django's session cookie enforces)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            now = timezone.now()
            last_seen = _last_seen(request)
            idle = timedelta(seconds=settings.PIM_SESSION_IDLE_SECONDS)
            if last_seen is not None and now - last_seen > idle:
                auth.logout(request)
                minutes = max(1, settings.PIM_SESSION_IDLE_SECONDS // 60)
                messages.info(request, f"You were signed out after {minutes} minutes without activity.")
            elif last_seen is None or now - last_seen >= _LAST_SEEN_RESOLUTION:
                request.session[LAST_SEEN_SESSION_KEY] = now.isoformat()
        return self.get_response(request)


def _last_seen(request) -> datetime | None:
    try:
        value = datetime.fromisoformat(request.session.get(LAST_SEEN_SESSION_KEY, ""))
    except (TypeError, ValueError):
        return None
    return value if timezone.is_aware(value) else None


class BreakGlassAuditMiddleware:
    """Every request of a break-glass (superuser) account is audited, not only its sign-in:
    the events raise the break-glass alert (alerts.rules)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        response = self.get_response(request)
        if user.is_authenticated and user.is_superuser:
            services.user_break_glass_request_record(
                user=user, method=request.method or "", path=request.path, status=response.status_code
            )
        return response


class ProviderMfaMiddleware:
    """After django-otp's OTPMiddleware: a session signed in by single sign-on whose MFA the
    portal trusts (PIM_OIDC_TRUST_MFA) counts as verified for signing in, through a stand-in
    device (accounts.sso.ProviderMfa) that never makes a step-up fresh."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.PIM_OIDC_TRUST_MFA and request.session.get(PROVIDER_MFA_SESSION_KEY):
            request.user = SimpleLazyObject(partial(_with_provider_mfa, request, request.user))
        return self.get_response(request)


def _with_provider_mfa(request, user):
    if isinstance(user, SimpleLazyObject):
        user.is_authenticated  # noqa: B018 - evaluates the lazy user (OTPMiddleware's)
        user = user._wrapped
    if user.is_authenticated and getattr(user, "otp_device", None) is None:
        if request.session.get(PROVIDER_MFA_SESSION_KEY) == user.pk:
            user.otp_device = ProviderMfa(user.pk)
    return user
