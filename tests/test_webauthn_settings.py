"""The passkeys' relying party comes from the environment (README "Configuration"): by
default the host and origin of PIM_BASE_URL, localhost for a development URL on an IP
address (WebAuthn takes no IP address as RP id)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRINT = (
    "import json, pim_portal.settings as s; "
    "print(json.dumps([s.OTP_WEBAUTHN_RP_ID, s.OTP_WEBAUTHN_RP_NAME, s.OTP_WEBAUTHN_ALLOWED_ORIGINS, "
    "s.OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN]))"
)


def relying_party(**env) -> list:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIM_", "OTP_"))}
    environment = {**clean, "DJANGO_DEBUG": "1", **env}
    output = subprocess.run(  # noqa: S603 - our own interpreter and settings module
        [sys.executable, "-c", PRINT], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )
    return json.loads(output.stdout)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ["localhost", "PIM Portal", ["http://localhost:8000"], False]),
        (
            {"PIM_BASE_URL": "http://[::1]:9000"},
            ["localhost", "PIM Portal", ["http://localhost:9000"], False],
        ),
        (
            {"PIM_BASE_URL": "https://pim.example.org", "PIM_MFA_ISSUER": "Contoso PIM"},
            ["pim.example.org", "Contoso PIM", ["https://pim.example.org"], False],
        ),
        (
            {
                "PIM_BASE_URL": "https://pim.example.org",
                "PIM_WEBAUTHN_RP_ID": "example.org",
                "PIM_WEBAUTHN_RP_NAME": "Example",
                "PIM_WEBAUTHN_ALLOWED_ORIGINS": "https://pim.example.org,https://pim2.example.org",
            },
            ["example.org", "Example", ["https://pim.example.org", "https://pim2.example.org"], False],
        ),
    ],
)
def test_the_relying_party_comes_from_the_environment(env, expected):
    assert relying_party(**env) == expected
