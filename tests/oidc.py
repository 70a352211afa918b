"""A real OpenID Connect provider on loopback for the single sign-on tests (oidc-provider-mock:
discovery, authorization with a form that takes the subject, token endpoint, signed ID tokens,
JWKS), and the settings that point the portal at it."""

from urllib.parse import urlsplit

import pytest
import requests
from oidc_provider_mock import run_server_in_thread

CLIENT_ID = "pim-portal-tests"
CLIENT_SECRET = "a-client-secret"  # noqa: S105 - the loopback test provider accepts any


@pytest.fixture(scope="session")
def oidc_server():
    with run_server_in_thread(require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def oidc_provider(oidc_server, settings):
    """The portal configured for the loopback provider; returns its base URL."""
    from accounts.sso import discovery_forget

    settings.PIM_OIDC_DISCOVERY_URL = f"{oidc_server}/.well-known/openid-configuration"
    settings.PIM_OIDC_ENABLED = True
    settings.PIM_OIDC_PROVIDER_NAME = "Test provider"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    discovery_forget()
    yield oidc_server
    discovery_forget()


def provider_user(base_url: str, sub: str, **claims) -> None:
    """Give the provider's account ``sub`` these claims (in its ID tokens from now on)."""
    response = requests.put(f"{base_url}/users/{sub}", json=claims, timeout=5)
    response.raise_for_status()


def sign_in_at_provider(client, sub: str, *, start: str = "/accounts/sso/start/"):
    """The whole code flow with the Django test client: start, the provider's consent form
    (posted with ``sub``), and the callback. Returns the callback's response."""
    response = client.get(start)
    assert response.status_code == 302, response
    authorize_url = response["Location"]
    consent = requests.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=5)
    assert consent.status_code == 302, consent.text
    callback = urlsplit(consent.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")
