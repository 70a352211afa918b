"""Single sign-on with OpenID Connect (mozilla-django-oidc does the code flow, state, nonce and
PKCE): the provider's endpoints from its discovery document, the ID token checked against the
issuer and this client (signature, issuer, audience, expiry), a secret or a certificate
(private_key_jwt) to redeem the code, and the person found by the subject alone
(accounts.services.sso). Single sign-on is the first factor only: the portal's MFA follows,
unless PIM_OIDC_TRUST_MFA lets the provider's amr/acr claims count for signing in (never for
a step-up: activation and approval still ask for a code)."""

import logging
import threading
import time
import uuid
from typing import Any

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.http import HttpResponseRedirect
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from . import services
from .backends import NoStandingPermissions

logger = logging.getLogger(__name__)

# The discovery document is read at first use and kept this long (keys rotate; endpoints don't).
DISCOVERY_MAX_AGE_SECONDS = 3600
INVITED_USER_SESSION_KEY = "pim_sso_invited_user"
PROVIDER_MFA_SESSION_KEY = "pim_sso_provider_mfa"
_SIGNED_IN_UNAVAILABLE = "Single sign-on is unavailable right now. Try again in a few minutes."


class SsoUnavailable(Exception):
    """The provider's discovery document could not be read."""


_discovery: dict[str, Any] = {}
_discovery_lock = threading.Lock()


def discovery() -> dict[str, Any]:
    """The provider's OpenID configuration (PIM_OIDC_DISCOVERY_URL), fetched with a timeout
    (PIM_OIDC_TIMEOUT) at first use and again after DISCOVERY_MAX_AGE_SECONDS."""
    url = settings.PIM_OIDC_DISCOVERY_URL
    if not url:
        raise SsoUnavailable("Single sign-on is not configured.")
    with _discovery_lock:
        cached = _discovery.get(url)
        if cached and time.monotonic() - cached[0] < DISCOVERY_MAX_AGE_SECONDS:
            return cached[1]
        try:
            response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as error:
            logger.warning("OIDC discovery at %s failed: %s", url, error)
            raise SsoUnavailable(_SIGNED_IN_UNAVAILABLE) from error
        missing = {"issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"} - set(document)
        if missing:
            logger.warning("OIDC discovery at %s lacks %s", url, ", ".join(sorted(missing)))
            raise SsoUnavailable(_SIGNED_IN_UNAVAILABLE)
        _discovery[url] = (time.monotonic(), document)
        return document


def discovery_forget() -> None:
    """Drop the cached discovery document (tests; a provider that moved)."""
    with _discovery_lock:
        _discovery.clear()


_FROM_DISCOVERY = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
}


def _setting(attr: str, *default: Any) -> Any:
    if attr in _FROM_DISCOVERY:
        return discovery().get(_FROM_DISCOVERY[attr], "")
    return import_from_settings(attr, *default)


def sso_context() -> dict[str, Any]:
    """What the sign-in page shows about single sign-on and passwords."""
    return {
        "sso_enabled": settings.PIM_OIDC_ENABLED,
        "sso_provider_name": settings.PIM_OIDC_PROVIDER_NAME,
        "password_login": settings.PIM_PASSWORD_LOGIN,
    }


class SsoBackend(NoStandingPermissions, OIDCAuthenticationBackend):
    """The OpenID Connect code flow's last step; grants no permission of its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django builds every back end for every sign-in and every request's session: the
        # provider is contacted only when an OIDC callback actually arrives (authenticate).
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()

    get_settings = staticmethod(_setting)

    def authenticate(self, request, **kwargs):
        if request is None or "nonce" not in kwargs or not settings.PIM_OIDC_ENABLED:
            return None  # not an OIDC callback (a password sign-in, say)
        try:
            document = discovery()
        except SsoUnavailable as error:
            request.pim_sso_refusal = str(error)
            return None
        self.issuer = document["issuer"]
        self.OIDC_OP_TOKEN_ENDPOINT = document["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = document.get("userinfo_endpoint", "")
        self.OIDC_OP_JWKS_ENDPOINT = document["jwks_uri"]
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        try:
            return super().authenticate(request, **kwargs)
        except (requests.RequestException, SuspiciousOperation) as error:
            logger.warning("OIDC sign-in failed: %s", error)
            request.pim_sso_refusal = "Single sign-on failed. Try again."
            return None

    def _verify_jws(self, payload, key):
        """The signature with the one algorithm configured, and the claims that make the token
        this provider's, for this client, now: issuer, audience, expiry (the library itself
        checks the signature only)."""
        try:
            return jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud"]},
                leeway=60,
            )
        except jwt.PyJWTError as error:
            raise SuspiciousOperation(f"ID token refused: {error}") from error

    def retrieve_matching_jwk(self, token):
        """The provider's key for this token: by its kid; a token without one only when the
        provider publishes a single key for the algorithm (the library insists on a kid)."""
        response = requests.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        header = jwt.get_unverified_header(token)
        keys = [
            key
            for key in response.json().get("keys", [])
            if key.get("use", "sig") == "sig" and key.get("alg", header.get("alg")) == header.get("alg")
        ]
        if "kid" in header:
            keys = [key for key in keys if key.get("kid") == header["kid"]]
        if len(keys) != 1:
            raise SuspiciousOperation("No single signing key of the provider matches the ID token.")
        return jwt.PyJWK(keys[0])

    def get_token(self, payload):
        certificate = settings.PIM_OIDC_CLIENT_CERTIFICATE
        if certificate:
            payload = {k: v for k, v in payload.items() if k != "client_secret"}
            payload["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            payload["client_assertion"] = client_assertion(certificate, audience=self.OIDC_OP_TOKEN_ENDPOINT)
        return super().get_token(payload)

    def get_or_create_user(self, access_token, id_token, payload):
        # The verified ID token's claims are the identity; no userinfo call is needed (and
        # Entra's userinfo lacks oid and tid).
        request = self.request
        try:
            user = services.sso_sign_in_resolve(
                issuer=self.issuer,
                claims=payload,
                invited_user_id=request.session.get(INVITED_USER_SESSION_KEY),
            )
        except services.SsoRefused as refusal:
            request.pim_sso_refusal = refusal.messages[0]
            return None
        request.pim_sso_provider_mfa = provider_mfa_trusted(payload)
        return user


def provider_mfa_trusted(claims: dict[str, Any]) -> bool:
    """Whether the ID token says the provider did MFA, and PIM_OIDC_TRUST_MFA lets that count
    for signing in."""
    if not settings.PIM_OIDC_TRUST_MFA:
        return False
    amr = claims.get("amr") or []
    amr = [amr] if isinstance(amr, str) else list(amr)
    if set(map(str, amr)) & set(settings.PIM_OIDC_TRUSTED_AMR):
        return True
    return str(claims.get("acr") or "") in set(settings.PIM_OIDC_TRUSTED_ACR)


def client_assertion(pem: str, *, audience: str) -> str:
    """A signed client assertion (RFC 7523, private_key_jwt): Entra's certificate credential.
    ``pem`` holds the private key and its certificate (for the x5t thumbprint)."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    certificate = x509.load_pem_x509_certificate(pem.encode())
    thumbprint = jwt.utils.base64url_encode(certificate.fingerprint(hashes.SHA1())).decode()  # noqa: S303 - x5t is SHA-1 by definition
    now = int(time.time())
    claims = {
        "iss": settings.OIDC_RP_CLIENT_ID,
        "sub": settings.OIDC_RP_CLIENT_ID,
        "aud": audience,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"x5t": thumbprint})  # type: ignore[arg-type]


class SsoStartView(OIDCAuthenticationRequestView):
    """GET: off to the provider (state, nonce and PKCE kept in the session)."""

    get_settings = staticmethod(_setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    def get(self, request):
        if not settings.PIM_OIDC_ENABLED:
            messages.error(request, "Single sign-on is not configured.")
            return HttpResponseRedirect(reverse("accounts:login"))
        try:
            self.OIDC_OP_AUTH_ENDPOINT = discovery()["authorization_endpoint"]
        except SsoUnavailable as error:
            messages.error(request, str(error))
            return HttpResponseRedirect(reverse("accounts:login"))
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        if not self.OIDC_RP_CLIENT_ID:
            raise ImproperlyConfigured("PIM_OIDC_CLIENT_ID is required for single sign-on.")
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """The provider sends the person back here; a refusal is said on the sign-in page."""

    get_settings = staticmethod(_setting)

    def login_failure(self):
        message = (
            getattr(self.request, "pim_sso_refusal", "") or "Single sign-on did not sign you in. Try again."
        )
        messages.error(self.request, message)
        return HttpResponseRedirect(reverse("accounts:login"))

    def login_success(self):
        response = super().login_success()
        self.request.session.pop(INVITED_USER_SESSION_KEY, None)
        if getattr(self.request, "pim_sso_provider_mfa", False):
            self.request.session[PROVIDER_MFA_SESSION_KEY] = self.user.pk
        return response


class ProviderMfa:
    """Stands in for an OTP device when the provider's MFA is trusted for signing in: the
    session counts as verified (django-otp's is_verified), but it never had a code checked,
    so no step-up is fresh (common.step_up) and activation and approval ask for one."""

    persistent_id = "accounts.sso.ProviderMfa"
    name = "Single sign-on MFA"

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
