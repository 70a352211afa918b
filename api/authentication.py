"""How API callers prove who they are: a bearer token, or the portal's own signed-in,
MFA-verified session (with CSRF checks on writes)."""

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from common.step_up import user_is_verified

from .models import ApiToken
from .services import api_token_matches, api_token_parse, api_token_touch

INVALID_TOKEN = "This token is invalid, expired or revoked."  # noqa: S105 - a message, not a secret


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer pim_<prefix>_<secret>``: found by its prefix, compared by its
    SHA-256 digest in constant time; expired, revoked or a deactivated user's: 401."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        keyword, _, raw = header.partition(" ")
        if keyword.lower() != self.keyword.lower():
            return None  # no token: maybe a session
        parsed = api_token_parse(raw.strip())
        if parsed is None:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        prefix, raw = parsed
        token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
        now = timezone.now()
        if (
            token is None
            or not api_token_matches(token, raw)
            or not token.is_usable(now)
            or not token.user.is_active
        ):
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        api_token_touch(token=token, now=now)
        return token.user, token

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class VerifiedSessionAuthentication(authentication.SessionAuthentication):
    """The portal's session, once it is MFA-verified (a password-only session is not signed in
    as far as the API is concerned). DRF enforces CSRF for every unsafe method."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None or not user_is_verified(result[0]):
            return None
        return result


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal access token (pim_…) made on the API tokens page or with "
            "`manage.py api_token create`.",
        }


class VerifiedSessionScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.VerifiedSessionAuthentication"
    name = "sessionAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
