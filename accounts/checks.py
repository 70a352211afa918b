"""System checks for signing in: a single sign-on set-up that cannot work, or a
PIM_PASSWORD_LOGIN that would let nobody in, stops the start with a clear message."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def sign_in_settings_check(app_configs, **kwargs):
    errors = []
    if settings.PIM_OIDC_ENABLED:
        if not settings.OIDC_RP_CLIENT_ID:
            errors.append(Error("Single sign-on needs PIM_OIDC_CLIENT_ID.", id="accounts.E001"))
        if not (settings.OIDC_RP_CLIENT_SECRET or settings.PIM_OIDC_CLIENT_CERTIFICATE):
            errors.append(
                Error(
                    "Single sign-on needs PIM_OIDC_CLIENT_SECRET or PIM_OIDC_CLIENT_CERTIFICATE.",
                    id="accounts.E002",
                )
            )
        if not settings.DEBUG and not settings.PIM_OIDC_DISCOVERY_URL.startswith("https://"):
            errors.append(Error("PIM_OIDC_DISCOVERY_URL must use https.", id="accounts.E003"))
    elif settings.PIM_PASSWORD_LOGIN != "on":  # noqa: S105 - a mode, not a password
        errors.append(
            Error(
                "PIM_PASSWORD_LOGIN is not 'on' but single sign-on is not configured: nobody could sign in.",
                hint="Set PIM_OIDC_DISCOVERY_URL (or PIM_OIDC_ENTRA_TENANT_ID), or PIM_PASSWORD_LOGIN=on.",
                id="accounts.E004",
            )
        )
    return errors
