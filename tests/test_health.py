"""/healthz and /readyz (pim_portal.health): JSON, no sign-in, no secret; /readyz answers 503
naming the failing part when the broker is down, beat has not ticked or an outbox is stuck,
and 200 again once it recovers."""

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import Email
from notifications.services import email_outbox_drain
from pim_portal import health
from pim_portal.jobs import job_run_record
from pim_portal.models import PeriodicJobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def heartbeat(clock):
    """Beat ticked just now."""

    def tick(at=None):
        at = at or timezone.now()
        job_run_record(name="beat-heartbeat", started_at=at, duration=0.01, succeeded=True)

    tick()
    return tick


@pytest.fixture
def closed_port():
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def readyz(client):
    response = client.get("/readyz")
    return response.status_code, response.json()


def test_healthz_answers_without_sign_in_and_says_nothing_else(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_readyz_is_green_when_everything_answers(client, heartbeat):
    status, body = readyz(client)

    assert status == 200, body
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) == {
        "database",
        "broker",
        "beat",
        "outbox:email",
        "outbox:directory",
        "outbox:webhook",
        "outbox:chat",
    }


def test_probes_are_served_for_any_host_and_over_plain_http(client, heartbeat, settings):
    """A load balancer reaches an instance by its address; the HTTPS redirect would bounce it."""
    settings.ALLOWED_HOSTS = ["pim.example.org"]
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/healthz", HTTP_HOST="10.0.0.7:8000").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.0.0.7:8000").status_code == 200
    assert client.get("/accounts/login/", HTTP_HOST="10.0.0.7:8000").status_code == 400


def test_probes_refuse_changes(client):
    assert client.post("/readyz").status_code == 405
    assert client.post("/healthz").status_code == 405


def test_readyz_is_red_naming_the_broker_when_redis_does_not_answer_then_green_again(
    client, heartbeat, settings, closed_port, tmp_path
):
    settings.REDIS_URL = f"redis://:s3cret-password@127.0.0.1:{closed_port}/0"

    status, body = readyz(client)

    assert status == 503
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"] == {"ok": False, "error": "unreachable"}
    assert "s3cret" not in str(body) and str(closed_port) not in str(body)  # no URL, no secret

    settings.REDIS_URL = ""  # the broker is back (here: the embedded transport, its own folder)
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
    }
    assert readyz(client)[0] == 200


def test_readyz_is_red_when_the_broker_folder_is_gone(client, heartbeat, settings, tmp_path):
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "missing")}

    status, body = readyz(client)

    assert status == 503 and body["failing"] == ["broker"]


def test_readyz_is_red_naming_beat_before_the_first_heartbeat_and_when_it_is_late(client, clock, settings):
    settings.PIM_READY_BEAT_MAX_AGE_SECONDS = 180

    status, body = readyz(client)
    assert status == 503 and body["failing"] == ["beat"]
    assert body["checks"]["beat"]["error"] == "no heartbeat yet"

    job_run_record(name="beat-heartbeat", started_at=timezone.now(), duration=0.01, succeeded=True)
    assert readyz(client)[0] == 200

    clock.shift(timedelta(seconds=181))  # three ticks of 60 s missed
    status, body = readyz(client)
    assert status == 503 and body["failing"] == ["beat"]
    assert body["checks"]["beat"] == {
        "ok": False,
        "error": "heartbeat too old",
        "age_seconds": 181.0,
        "max_age_seconds": 180,
    }

    job_run_record(name="beat-heartbeat", started_at=timezone.now(), duration=0.01, succeeded=True)
    assert readyz(client)[0] == 200


def test_a_failed_heartbeat_run_does_not_count_as_a_heartbeat(client, clock):
    job_run_record(name="beat-heartbeat", started_at=timezone.now(), duration=0.01, succeeded=False)

    status, body = readyz(client)

    assert status == 503 and body["failing"] == ["beat"]
    assert PeriodicJobStatus.objects.get(name="beat-heartbeat").failures == 1


def test_the_beat_check_can_be_turned_off(client, settings):
    settings.PIM_READY_BEAT_MAX_AGE_SECONDS = 0

    status, body = readyz(client)

    assert status == 200 and body["checks"]["beat"] == {"ok": True, "checked": False}


def test_readyz_is_red_naming_a_stuck_outbox_then_green_once_it_drains(
    client, heartbeat, clock, requester, settings
):
    settings.PIM_READY_OUTBOX_MAX_AGE_SECONDS = 900
    now = timezone.now()
    Email.objects.create(
        template="test",
        to=requester.email,
        subject="Hello",
        body_text="Hello",
        body_html="<p>Hello</p>",
        created_at=now,
        next_attempt_at=now,
    )
    assert readyz(client)[0] == 200  # just written: not late

    clock.shift(timedelta(seconds=901))
    heartbeat()
    status, body = readyz(client)

    assert status == 503
    assert body["failing"] == ["outbox:email"]
    assert body["checks"]["outbox:email"]["oldest_age_seconds"] == 901.0
    assert body["checks"]["outbox:directory"] == {"ok": True, "oldest_age_seconds": None}

    assert email_outbox_drain() == 1
    assert readyz(client)[0] == 200


def test_a_stuck_webhook_delivery_is_red_but_one_waiting_on_a_paused_subscription_is_not(
    client, heartbeat, clock, settings
):
    from integrations.models import WebhookDelivery, WebhookSubscription

    settings.PIM_READY_OUTBOX_MAX_AGE_SECONDS = 900
    now = timezone.now()
    subscription = WebhookSubscription.objects.create(
        name="SIEM", url="https://siem.example/in", event_types=["*"], secret="s" * 40, created_at=now
    )
    WebhookDelivery.objects.create(subscription=subscription, seq=1, action="auth.sign_in", created_at=now)
    clock.shift(timedelta(seconds=901))
    heartbeat()

    status, body = readyz(client)
    assert status == 503 and body["failing"] == ["outbox:webhook"]

    WebhookSubscription.objects.filter(pk=subscription.pk).update(status="paused", paused_at=now)
    status, body = readyz(client)
    assert status == 200, body  # paused on purpose (and alerted on), not a stuck worker


def test_readyz_is_red_when_migrations_are_missing(client, heartbeat, monkeypatch):
    monkeypatch.setattr(health, "_migrated", False)
    monkeypatch.setattr(
        health.MigrationExecutor, "migration_plan", lambda self, targets: [("a migration", False)]
    )

    status, body = readyz(client)

    assert status == 503 and body["failing"] == ["database"]
    assert body["checks"]["database"] == {"ok": False, "error": "migrations not applied", "unapplied": 1}


def test_run_periodic_records_every_job_it_runs_and_so_the_heartbeat(client, clock, settings):
    from io import StringIO

    from django.core.management import call_command

    call_command("run_periodic", stdout=StringIO())

    recorded = dict(PeriodicJobStatus.objects.values_list("name", "runs"))
    assert recorded["beat-heartbeat"] == 1 and recorded["email-outbox-drain"] == 1
    assert "entra-sync" not in recorded  # off: not run, not recorded
    assert readyz(client)[0] == 200


def test_a_worker_records_the_periodic_tasks_it_runs_and_only_those(clock):
    from types import SimpleNamespace

    from pim_portal import jobs

    heartbeat_task = SimpleNamespace(name="pim_portal.tasks.beat_heartbeat")
    other_task = SimpleNamespace(name="notifications.tasks.email_send")
    for task, task_id in ((heartbeat_task, "t-1"), (other_task, "t-2")):
        jobs.on_task_prerun(sender=task, task_id=task_id)
        jobs.on_task_postrun(sender=task, task_id=task_id, state="SUCCESS")
    jobs.on_task_prerun(sender=heartbeat_task, task_id="t-3")
    jobs.on_task_postrun(sender=heartbeat_task, task_id="t-3", state="FAILURE")

    (status,) = PeriodicJobStatus.objects.all()
    assert status.name == "beat-heartbeat"
    assert (status.runs, status.failures) == (2, 1)
    assert status.last_success_at == timezone.now() and status.last_failure_at == timezone.now()
    assert jobs._started == {}
