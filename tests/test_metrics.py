"""/metrics (pim_portal.metrics): refused without the bearer token or an allowed address;
the request metrics count requests; the domain gauges move with the data they report."""

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from activations.tests.helpers import approve, eligible_for, request_activation, role_with
from audit.checkpoints import audit_checkpoint_write
from audit.signing import private_key_text
from notifications.services import email_outbox_drain
from pim_portal.jobs import job_run_record
from roles.directory_services import directory_outbox_drain
from roles.models import Role

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-" + "m" * 32


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.PIM_METRICS_TOKEN = TOKEN
    settings.PIM_METRICS_ALLOWED_NETWORKS = []


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def gauge(samples, name, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"bearer{TOKEN}"],
)
def test_metrics_are_refused_without_the_right_token(client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = client.get("/metrics", **extra)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"pim_" not in response.content


def test_with_nothing_configured_nobody_reads_the_metrics(client, settings):
    settings.PIM_METRICS_TOKEN = ""

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get("/metrics").status_code == 401


def test_a_signed_in_administrator_is_no_reader_of_the_metrics(verified_client, admin):
    """The session is not consulted: only the token or the address."""
    assert verified_client(admin).get("/metrics").status_code == 401


def test_an_allowed_address_reads_the_metrics_without_a_token(client, settings):
    settings.PIM_METRICS_TOKEN = ""
    settings.PIM_METRICS_ALLOWED_NETWORKS = ["10.9.0.0/16"]

    assert client.get("/metrics", REMOTE_ADDR="10.9.4.2").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.10.4.2").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="not-an-address").status_code == 401


def test_requests_are_counted_by_url_pattern_and_status(client):
    before = scrape(client)
    client.get("/accounts/login/")
    client.get("/no/such/page/")

    after = scrape(client)

    def count(samples, **labels):
        return samples.get(("pim_http_requests_total", tuple(sorted(labels.items()))), 0.0)

    assert count(after, method="GET", view="accounts:login", status="200") == (
        count(before, method="GET", view="accounts:login", status="200") + 1
    )
    assert count(after, method="GET", view="unmatched", status="404") == (
        count(before, method="GET", view="unmatched", status="404") + 1
    )


def test_the_gauges_move_with_pending_requests_grants_and_an_outbox_that_drains(
    client, requester, approver, clock
):
    role = role_with(approvers=[approver])
    Role.objects.filter(pk=role.pk).update(privileged=True)
    start = scrape(client)
    assert gauge(start, "pim_pending_approvals") == 0
    assert gauge(start, "pim_outbox_depth", outbox="email") == 0
    assert gauge(start, "pim_active_privileged_assignments") == 0

    first = request_activation(requester, eligible_for(requester, role))
    request_activation(requester, eligible_for(requester, role_with(approvers=[approver])))
    clock.shift(timedelta(seconds=30))
    pending = scrape(client)

    assert gauge(pending, "pim_pending_approvals") == 2
    emails = gauge(pending, "pim_outbox_depth", outbox="email")
    assert emails >= 2  # the approvers are told (sent after commit: still waiting here)
    assert gauge(pending, "pim_outbox_oldest_age_seconds", outbox="email") == 30.0

    approve(approver, first)
    granted = scrape(client)
    assert gauge(granted, "pim_pending_approvals") == 1
    assert gauge(granted, "pim_active_privileged_assignments") == 1
    assert gauge(granted, "pim_outbox_depth", outbox="directory") == 1

    assert email_outbox_drain() >= emails
    assert directory_outbox_drain() == 1
    drained = scrape(client)
    assert gauge(drained, "pim_outbox_depth", outbox="email") == 0
    assert gauge(drained, "pim_outbox_oldest_age_seconds", outbox="email") == 0
    assert gauge(drained, "pim_outbox_depth", outbox="directory") == 0


def test_periodic_jobs_and_the_checkpoint_are_reported(client, clock, settings):
    settings.PIM_AUDIT_SIGNING_KEY = private_key_text(Ed25519PrivateKey.generate())
    now = timezone.now()
    job_run_record(name="email-outbox-drain", started_at=now, duration=0.25, succeeded=True)
    job_run_record(name="email-outbox-drain", started_at=now, duration=0.5, succeeded=False)
    audit_checkpoint_write()
    clock.shift(timedelta(minutes=5))

    samples = scrape(client)

    assert gauge(samples, "pim_periodic_job_last_duration_seconds", job="email-outbox-drain") == 0.5
    assert gauge(samples, "pim_periodic_job_last_success_timestamp_seconds", job="email-outbox-drain") == (
        now.timestamp()
    )
    assert gauge(samples, "pim_periodic_job_runs_total", job="email-outbox-drain") == 2
    assert gauge(samples, "pim_periodic_job_failures_total", job="email-outbox-drain") == 1
    assert gauge(samples, "pim_audit_checkpoint_age_seconds") == 300.0
