"""The system check explains missing and inconsistent Entra settings."""

import pytest

from entra.checks import entra_settings_check
from entra.client import certificate_credential
from entra.tests.conftest import key_and_certificate


def ids(settings) -> list[str]:
    return [message.id for message in entra_settings_check()]


def test_off_by_default_and_then_silent(settings):
    settings.ENTRA_SYNC_ENABLED = False
    assert ids(settings) == []


def test_the_graph_back_end_without_the_sync_is_an_error(settings):
    settings.ENTRA_SYNC_ENABLED = False
    settings.PIM_DIRECTORY_BACKEND = "entra.backend.GraphBackend"
    assert ids(settings) == ["entra.E001"]


def test_a_complete_configuration_passes(entra_settings):
    assert ids(entra_settings) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"ENTRA_TENANT_ID": ""}, "entra.E002"),
        ({"ENTRA_TENANT_ID": "common"}, "entra.E003"),
        ({"ENTRA_TENANT_ID": "not a tenant"}, "entra.E003"),
        ({"ENTRA_CLIENT_ID": ""}, "entra.E004"),
        ({"ENTRA_CLIENT_CERTIFICATE": "-----BEGIN PRIVATE KEY-----"}, "entra.E005"),
        ({"ENTRA_CLIENT_SECRET": ""}, "entra.E006"),
        ({"ENTRA_CLIENT_SECRET": "", "ENTRA_CLIENT_CERTIFICATE": "not a key"}, "entra.E007"),
        ({"ENTRA_AUTHORITY_HOST": "http://login.microsoftonline.com"}, "entra.E008"),
        ({"ENTRA_GRAPH_BASE_URL": "http://127.0.0.1:8080/v1.0"}, "entra.E008"),
        ({"ENTRA_AUTHORITY_HOST": "https://login.microsoftonline.com/contoso"}, "entra.E009"),
        ({"ENTRA_HTTP_TIMEOUT": 0}, "entra.E010"),
        ({"ENTRA_ARM_URL": "http://127.0.0.1:8080"}, "entra.E008"),
        ({"ENTRA_ARM_SUBSCRIPTIONS": ["a1b2c3d4-0000-4000-8000-000000000001", "prod"]}, "entra.E011"),
        ({"PIM_DIRECTORY_BACKEND": "roles.directory.NullBackend"}, "entra.I001"),
    ],
)
def test_each_problem_is_explained(entra_settings, changes, expected):
    for name, value in changes.items():
        setattr(entra_settings, name, value)
    assert ids(entra_settings) == [expected]


def test_the_secret_is_never_in_a_check_message(entra_settings):
    entra_settings.ENTRA_CLIENT_CERTIFICATE = "-----BEGIN PRIVATE KEY-----"
    text = " ".join(f"{m.msg} {m.hint}" for m in entra_settings_check())
    assert entra_settings.ENTRA_CLIENT_SECRET not in text


def test_a_certificate_credential_gets_its_thumbprint_from_the_certificate(entra_settings):
    pem, thumbprint = key_and_certificate()
    assert certificate_credential(pem) == {"private_key": pem, "thumbprint": thumbprint}
    entra_settings.ENTRA_CLIENT_SECRET = ""
    entra_settings.ENTRA_CLIENT_CERTIFICATE = pem
    assert ids(entra_settings) == []
    key_only = pem.split("-----BEGIN CERTIFICATE-----")[0]
    entra_settings.ENTRA_CLIENT_CERTIFICATE = key_only
    assert ids(entra_settings) == ["entra.E007"]
    entra_settings.ENTRA_CLIENT_CERTIFICATE_THUMBPRINT = thumbprint.upper()
    assert ids(entra_settings) == []
