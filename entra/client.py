"""A thin Microsoft Graph client over msal (client credentials) and requests.

One client per process, built lazily from the ENTRA_* settings at first use (never at import:
msal's constructor already talks to the tenant) and shared by every thread. It keeps one
msal ConfidentialClientApplication, so tokens come from msal's cache until they near expiry,
and one requests.Session, with a timeout on every call (msal's own and Graph's).

Failures are classified for the callers: GraphUnavailable (transient: 429, 5xx, timeouts, no
connection; with the server's Retry-After when it gave one) and GraphError (permanent: a 4xx
with Graph's error code). Neither the secret nor any token is ever logged or put in an error.
"""

import email.utils
import logging
import math
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import msal
import requests
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from roles.directory import PermanentDirectoryError, TransientDirectoryError

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER = 3600.0  # seconds; a longer Retry-After is not believed
MAX_READ_WAIT = 60.0  # the longest a read waits in-process before giving up for this run
READ_RETRIES = 3
# The settings a client is built from: changing one (tests, override_settings) drops it.
CLIENT_SETTINGS = {
    "ENTRA_SYNC_ENABLED",
    "ENTRA_TENANT_ID",
    "ENTRA_CLIENT_ID",
    "ENTRA_CLIENT_SECRET",
    "ENTRA_CLIENT_CERTIFICATE",
    "ENTRA_CLIENT_CERTIFICATE_THUMBPRINT",
    "ENTRA_AUTHORITY_HOST",
    "ENTRA_GRAPH_BASE_URL",
    "ENTRA_HTTP_TIMEOUT",
    "ENTRA_ARM_URL",
}


class GraphError(PermanentDirectoryError):
    """Graph or the token endpoint refused the call; retrying will not help."""

    def __init__(self, message: str, *, code: str = "", status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class GraphAuthError(GraphError):
    """No token: the tenant, client id or credential is wrong, or the app is not consented."""


class GraphUnavailable(TransientDirectoryError):
    """Throttled, a server error, a timeout or no connection: try again later."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: an integer, a fraction ("2.128", which Graph
    sends) or an HTTP date; None when absent or unreadable."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def certificate_credential(pem: str, thumbprint: str = "") -> dict:
    """msal's certificate credential from a PEM private key (and certificate); ValueError
    says what is wrong without repeating the key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    data = pem.encode()
    try:
        serialization.load_pem_private_key(data, password=None)
    except (TypeError, ValueError):
        raise ValueError("it holds no unencrypted PEM private key") from None
    if not thumbprint:
        try:
            certificate = x509.load_pem_x509_certificate(data)
        except ValueError:
            raise ValueError(
                "it holds no certificate, and ENTRA_CLIENT_CERTIFICATE_THUMBPRINT is not set"
            ) from None
        # Entra identifies the certificate by its SHA-1 thumbprint: SHA-1 is the protocol's choice.
        thumbprint = certificate.fingerprint(hashes.SHA1()).hex()  # noqa: S303
    return {"private_key": pem, "thumbprint": thumbprint.replace(":", "").lower()}


def new_session() -> requests.Session:
    """The HTTP session msal and Graph calls share (tests point this at the local stub)."""
    session = requests.Session()
    session.headers["User-Agent"] = "pim-portal"
    return session


class _Transport:
    """What msal (as its http_client) and the Graph calls send through: one session, and a
    timeout on every call (msal ignores its own timeout argument when given a client)."""

    def __init__(self, session: requests.Session, timeout: float):
        self.session = session
        self.timeout = timeout

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return self.session.request(method, url, **kwargs)

    def get(self, url, params=None, headers=None, **kwargs):
        return self.request("GET", url, params=params, headers=headers, **kwargs)

    def post(self, url, params=None, data=None, headers=None, **kwargs):
        return self.request("POST", url, params=params, data=data, headers=headers, **kwargs)

    def close(self) -> None:  # part of msal's http_client interface
        self.session.close()


class GraphClient:
    """Calls Microsoft Graph with an app-only token for one tenant (or, as beside() makes it,
    another Microsoft API that takes the same app's token for its own host's scope)."""

    service = "Graph"  # how errors name the API

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        credential: str | dict,
        authority_host: str,
        graph_base_url: str,
        timeout: float,
        session: requests.Session | None = None,
        sleep=time.sleep,
    ):
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self.graph_base_url = graph_base_url.rstrip("/")
        parts = urlsplit(self.graph_base_url)
        self._graph_origin = f"{parts.scheme}://{parts.netloc}"
        self.scope = f"{self._graph_origin}/.default"
        self.timeout = timeout
        self.transport = _Transport(session or new_session(), timeout)
        self.sleep = sleep
        self._credential = credential
        self._app: msal.ConfidentialClientApplication | None = None
        self._app_lock = threading.Lock()

    def __repr__(self):  # never the credential
        return f"<{type(self).__name__} tenant={self.tenant_id} client={self.client_id}>"

    def beside(self, cls: "type[GraphClient]", base_url: str) -> "GraphClient":
        """A client of another API (cls) at base_url, on this one's msal application (same
        client id, credential and token cache), session and timeouts: only the base URL and
        the token's scope (base_url's host + /.default) differ."""
        other = cls(
            tenant_id=self.tenant_id,
            client_id=self.client_id,
            credential=self._credential,
            authority_host=self.authority.rsplit("/", 1)[0],
            graph_base_url=base_url,
            timeout=self.timeout,
            sleep=self.sleep,
        )
        other.transport = self.transport
        other._application = self._application  # type: ignore[method-assign]
        other.forget_token = self.forget_token  # type: ignore[method-assign]
        return other

    @classmethod
    def from_settings(cls, **overrides) -> "GraphClient":
        if not settings.ENTRA_SYNC_ENABLED:
            raise GraphError("The Entra back end is off: set ENTRA_SYNC_ENABLED and its settings.")
        if settings.ENTRA_CLIENT_CERTIFICATE:
            try:
                credential: str | dict = certificate_credential(
                    settings.ENTRA_CLIENT_CERTIFICATE, settings.ENTRA_CLIENT_CERTIFICATE_THUMBPRINT
                )
            except ValueError as error:
                raise GraphAuthError(f"ENTRA_CLIENT_CERTIFICATE cannot be used: {error}.") from None
        else:
            credential = settings.ENTRA_CLIENT_SECRET
        options = {
            "tenant_id": settings.ENTRA_TENANT_ID,
            "client_id": settings.ENTRA_CLIENT_ID,
            "credential": credential,
            "authority_host": settings.ENTRA_AUTHORITY_HOST,
            "graph_base_url": settings.ENTRA_GRAPH_BASE_URL,
            "timeout": settings.ENTRA_HTTP_TIMEOUT,
        }
        return cls(**{**options, **overrides})

    # --- Tokens ------------------------------------------------------------------------------

    def _application(self) -> msal.ConfidentialClientApplication:
        with self._app_lock:
            if self._app is None:
                self._app = self._build_application()
            return self._app

    def _build_application(self) -> msal.ConfidentialClientApplication:
        try:
            return msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=self._credential,
                authority=self.authority,
                http_client=self.transport,
                # The authority is configured, not discovered: no instance-discovery calls, and
                # no regional endpoint (those are for Microsoft's own apps).
                instance_discovery=False,
                azure_region=False,
            )
        except (requests.Timeout, requests.ConnectionError) as error:
            raise GraphUnavailable(f"The Entra sign-in endpoint is unreachable ({_kind(error)}).") from None
        except msal.exceptions.MsalError:
            raise GraphUnavailable("The Entra sign-in endpoint answered with a server error.") from None
        except ValueError as error:
            raise GraphAuthError(f"Entra refused the tenant “{self.tenant_id}”: {error}") from None

    def token(self) -> tuple[str, str]:
        """An access token for this API's scope and where it came from ("cache" or
        "identity_provider")."""
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=[self.scope])
        except (requests.Timeout, requests.ConnectionError) as error:
            raise GraphUnavailable(f"The Entra token endpoint is unreachable ({_kind(error)}).") from None
        except (msal.exceptions.MsalError, ValueError):
            raise GraphUnavailable("The Entra token endpoint answered with a server error.") from None
        if "access_token" in result:
            return result["access_token"], result.get("token_source", "")
        code = str(result.get("error", "unknown_error"))
        if code in {"temporarily_unavailable", "server_error"}:
            raise GraphUnavailable(f"The Entra token endpoint is busy ({code}).")
        # The first sentence only ("AADSTS7000215: Invalid client secret provided"); the rest
        # is advice and trace ids.
        description = " ".join(str(result.get("error_description", "")).split()).split(". ")[0][:200]
        detail = f": {description}" if description else ""
        raise GraphAuthError(f"Entra refused the token request ({code}){detail}.", code=code)

    def forget_token(self) -> None:
        if self._app is not None:
            self._app.remove_tokens_for_client()

    # --- Graph calls ---------------------------------------------------------------------------

    def request(self, method: str, path_or_url: str, *, params=None, json=None, headers=None) -> dict:
        """One Graph call (a rejected token is renewed once); the JSON answer, {} if none."""
        url = self._url(path_or_url)
        where = f"{method} {urlsplit(url).path}"
        for attempt in (1, 2):
            token, _ = self.token()
            call_headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "client-request-id": str(uuid.uuid4()),
                **(headers or {}),
            }
            try:
                response = self.transport.request(method, url, params=params, json=json, headers=call_headers)
            except requests.Timeout:
                raise GraphUnavailable(
                    f"{self.service} did not answer within {self.timeout:g} s ({where})."
                ) from None
            except requests.ConnectionError as error:
                raise GraphUnavailable(f"{self.service} is unreachable ({_kind(error)}; {where}).") from None
            if response.status_code == 401 and attempt == 1:
                self.forget_token()  # expired or revoked before msal's clock said so
                continue
            return _answer(response, where, self.service)
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, path_or_url: str, *, params=None, headers=None, retries: int = READ_RETRIES) -> dict:
        """A read, retried in-process when throttled or failing (waiting Retry-After, or
        backing off exponentially with jitter when the server gave none)."""
        for attempt in range(retries + 1):
            try:
                return self.request("GET", path_or_url, params=params, headers=headers)
            except GraphUnavailable as error:
                if attempt == retries:
                    raise
                wait = error.retry_after
                if wait is None:
                    wait = 2**attempt * (1 + random.random() / 4)  # noqa: S311  (jitter, not a secret)
                if wait > MAX_READ_WAIT:
                    raise
                logger.info("%s busy (%s); retrying in %.1f s", self.service, error, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def pages(self, path: str, *, params=None, headers=None) -> Iterator[list[dict]]:
        """Every page of a collection, following @odata.nextLink (ARM: nextLink) verbatim."""
        page = self.get(path, params=params, headers=headers)
        while True:
            yield page.get("value", [])
            next_link = page.get("@odata.nextLink") or page.get("nextLink")
            if not next_link:
                return
            page = self.get(next_link, headers=headers)

    def all(self, path: str, *, params=None, headers=None) -> Iterator[dict]:
        for page in self.pages(path, params=params, headers=headers):
            yield from page

    def post(self, path: str, body: dict) -> dict:
        """A write: not retried here (the outbox retries, and the writes are idempotent)."""
        return self.request("POST", path, json=body)

    def _url(self, path_or_url: str) -> str:
        if "://" not in path_or_url:
            return f"{self.graph_base_url}/{path_or_url.lstrip('/')}"
        # A nextLink elsewhere would carry the token to another host: refuse it.
        if not path_or_url.startswith(self._graph_origin + "/"):
            raise GraphError(f"{self.service} sent a link to another host ({urlsplit(path_or_url).netloc}).")
        return path_or_url


def _answer(response: requests.Response, where: str, service: str = "Graph") -> dict:
    status = response.status_code
    if status < 300:
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise GraphUnavailable(f"{service} sent an answer that is not JSON ({where}).") from None
    code, message = _graph_error(response)
    if status in (408, 429) or status >= 500:
        raise GraphUnavailable(
            f"{service} answered {status} {code} ({where}).".replace("  ", " "),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    raise GraphError(f"{service} refused {where}: {status} {code}: {message}", code=code, status=status)


def _graph_error(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return str(error)[:100], ""
    return str(error.get("code", ""))[:100], " ".join(str(error.get("message", "")).split())[:300]


def _kind(error: Exception) -> str:
    return "timeout" if isinstance(error, requests.Timeout) else "connection failed"


# --- The process's client --------------------------------------------------------------------

_lock = threading.Lock()
_client: GraphClient | None = None


def get_graph() -> GraphClient:
    """This process's client, built from settings at first use."""
    global _client
    with _lock:
        if _client is None:
            _client = GraphClient.from_settings()
        return _client


def graph_install(client: GraphClient | None) -> None:
    """Replace this process's client (None: build it again from settings at next use)."""
    global _client
    with _lock:
        _client = client


@receiver(setting_changed)
def _drop_client_on_settings_change(*, setting, **kwargs):
    if setting in CLIENT_SETTINGS:
        graph_install(None)


def _after_fork_in_child() -> None:
    # A forked worker must not share the parent's sockets (nor a lock held at fork time).
    global _client, _lock
    _lock = threading.Lock()
    _client = None


os.register_at_fork(after_in_child=_after_fork_in_child)
