"""Request ids (pim_portal.middleware): a client never chooses the id its audit events carry.
An X-Request-ID header is kept only from PIM_TRUSTED_PROXIES and only in the strict format
(8-64 letters, digits and hyphens); every other request gets a fresh id."""

import re
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import RequestFactory

from audit.models import AuditEvent
from audit.services import audit_record
from pim_portal import settings as project_settings
from pim_portal.middleware import RequestIdMiddleware

pytestmark = pytest.mark.django_db

FRESH = re.compile(r"[0-9a-f]{32}")
PROXY = "10.20.0.5"


def view(request):
    audit_record(action="test.in_request")
    return HttpResponse()


def through_middleware(request_id: str, *, remote_addr: str) -> tuple[str, AuditEvent]:
    request = RequestFactory().post("/", REMOTE_ADDR=remote_addr, HTTP_X_REQUEST_ID=request_id)
    response = RequestIdMiddleware(view)(request)
    return response["X-Request-ID"], AuditEvent.objects.get(action="test.in_request")


def test_by_default_nobody_is_trusted_and_a_client_chosen_id_is_replaced(client, requester):
    chosen = "client-chosen-id-42"

    sent, event = through_middleware(chosen, remote_addr=PROXY)
    response = client.post(
        "/accounts/login/", {"username": "requester", "password": "wrong"}, HTTP_X_REQUEST_ID=chosen
    )

    assert FRESH.fullmatch(sent) and sent == event.request_id
    assert FRESH.fullmatch(response["X-Request-ID"])
    failed = AuditEvent.objects.get(action="auth.sign_in_failed")
    assert failed.request_id == response["X-Request-ID"]
    assert not AuditEvent.objects.filter(request_id=chosen).exists()


def test_an_id_passed_on_by_a_trusted_proxy_is_kept(settings):
    settings.PIM_TRUSTED_PROXIES = ["10.20.0.0/16"]
    chosen = str(uuid.uuid4())

    sent, event = through_middleware(chosen, remote_addr=PROXY)

    assert sent == event.request_id == chosen


def test_an_address_outside_the_trusted_proxies_is_not_trusted(settings):
    settings.PIM_TRUSTED_PROXIES = ["10.20.0.0/16", "192.0.2.7"]

    sent, event = through_middleware("lb-request-0042", remote_addr="10.21.0.5")

    assert FRESH.fullmatch(sent) and event.request_id == sent


@pytest.mark.parametrize(
    "chosen",
    [
        "short",
        "a" * 65,
        "id.with.dots",
        "id_with_underscore",
        "id with spaces",
        "trailing-newline\n",
        "header\r\nX-Injected: 1",
        "ünïcode-request-id",
        "",
    ],
)
def test_an_id_in_any_other_format_is_replaced_even_from_a_trusted_proxy(settings, chosen):
    settings.PIM_TRUSTED_PROXIES = [PROXY]

    sent, event = through_middleware(chosen, remote_addr=PROXY)

    assert FRESH.fullmatch(sent) and event.request_id == sent


def test_trusted_proxies_must_be_addresses_or_networks(monkeypatch):
    monkeypatch.setenv("PIM_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::1")
    assert project_settings.env_networks("PIM_TRUSTED_PROXIES") == ["10.0.0.0/8", "2001:db8::1/128"]

    monkeypatch.setenv("PIM_TRUSTED_PROXIES", "10.0.0.0/8,load-balancer")
    with pytest.raises(ImproperlyConfigured, match="PIM_TRUSTED_PROXIES"):
        project_settings.env_networks("PIM_TRUSTED_PROXIES")
