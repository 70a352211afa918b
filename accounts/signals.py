"""Sign-in auditing. Sign-ins arrive through several doors (portal, admin, API), so they are
caught at Django's auth signals rather than in each view."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from . import services


@receiver(user_logged_in)
def audit_sign_in(sender, request, user, **kwargs):
    services.user_sign_in_record(user=user)


@receiver(user_login_failed)
def audit_failed_sign_in(sender, credentials, request=None, **kwargs):
    services.user_sign_in_failure_record(username=str(credentials.get("username", ""))[:150])
