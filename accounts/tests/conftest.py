# The loopback OpenID Connect provider (tests/oidc.py) for the single sign-on tests.
from tests.oidc import oidc_provider, oidc_server  # noqa: F401
