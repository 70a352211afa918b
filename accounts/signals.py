"""Sign-in auditing. Sign-ins arrive through several doors (portal, admin, single sign-on),
so they are caught at Django's auth signals rather than in each view. django-axes counts the
same failures (its receiver runs first: its app is installed before this one)."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from . import services
from .throttle import attempt_username, failure_is_audited


@receiver(user_logged_in)
def audit_sign_in(sender, request, user, **kwargs):
    method = "sso" if str(getattr(user, "backend", "")).endswith(".SsoBackend") else "password"
    services.user_sign_in_record(user=user, method=method)


@receiver(user_login_failed)
def audit_failed_sign_in(sender, credentials, request=None, **kwargs):
    username = attempt_username(None, credentials) or ""
    audited, failures = failure_is_audited(request, username)
    if audited:
        services.user_sign_in_failure_record(username=username, failures=failures)
