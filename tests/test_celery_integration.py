"""A real Celery beat and a real worker expire an activation and time out a request.

Beat runs as `celery -A pim_portal beat` in a subprocess and only publishes to Redis; the
worker runs in this process (celery.contrib.testing), so its tasks use the test database.
Needs PostgreSQL (a live database shared with the worker thread) and REDIS_URL.
"""

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.conf import settings
from django.core import mail
from django.utils import timezone

from activations.models import ActivationRequest
from activations.tests.helpers import HOUR, eligible_for, request_activation, role_with
from notifications.models import Email
from pim_portal.celery import app
from roles.models import DirectoryOperation
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (set REDIS_URL)"),
]

Status = ActivationRequest.Status
TIMEOUT = 25  # seconds for beat to publish and the worker to finish everything


@pytest.fixture
def tasks_done():
    """The names of the tasks the worker finished, and an Event set after each one."""
    done, progress = [], threading.Event()

    def record(sender=None, **kwargs):
        done.append(sender.name)
        progress.set()

    task_postrun.connect(record, weak=False)
    yield done, progress
    task_postrun.disconnect(record)


@pytest.fixture
def broker():
    """Tasks go to Redis for this test (the test settings run them eagerly otherwise)."""
    saved = {key: app.conf[key] for key in ("task_always_eager", "worker_hijack_root_logger")}
    app.conf.update(task_always_eager=False, worker_hijack_root_logger=False)
    app.control.purge()  # nothing left over from an earlier run
    yield app
    app.control.purge()
    app.conf.update(saved)


@contextmanager
def celery_beat(tmp_path):
    """`celery beat` in a subprocess, publishing the fast schedule of tests.celery_beat_settings;
    terminated (then killed if it must be) on the way out."""
    log = tmp_path / "beat.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.celery_beat_settings",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "PIM_DATA_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "celery", "-A", "pim_portal", "beat"]
    command += ["-s", str(tmp_path / "beat-schedule"), "--max-interval", "1", "--loglevel", "INFO"]
    with log.open("w") as output:
        # A fixed command line of our own (no shell, no outside input).
        process = subprocess.Popen(  # noqa: S603
            command, cwd=settings.BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(predicate, progress: threading.Event, timeout: float) -> bool:
    """Re-check `predicate` each time the worker finishes a task, until it holds or time runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        progress.wait(remaining)
        progress.clear()
    return True


def test_beat_and_a_worker_expire_an_activation_and_time_out_a_request(broker, tasks_done, tmp_path):
    # Made with explicit times in the past, before anything runs: due at the first tick.
    now = timezone.now()
    requester, approver = UserFactory(), UserFactory()
    lapsed = request_activation(
        requester, eligible_for(requester, role_with(), starts_at=now - 4 * HOUR), now=now - 3 * HOUR
    )
    undecided = request_activation(
        requester,
        eligible_for(requester, role_with(approvers=[approver]), starts_at=now - 48 * HOUR),
        now=now - 25 * HOUR,
    )
    assert lapsed.ends_at < now and undecided.decide_by < now
    done, progress = tasks_done

    def finished():
        statuses = dict(ActivationRequest.objects.values_list("pk", "status"))
        revoke_done = DirectoryOperation.objects.filter(
            assignment=lapsed.active_assignment_id, operation="revoke", status="done"
        ).exists()
        told = Email.objects.filter(template="request-closed", status="sent").count() == 2
        return (statuses[lapsed.pk], statuses[undecided.pk]) == (Status.EXPIRED, Status.TIMED_OUT) and (
            revoke_done and told
        )

    # Beat starts once the worker is up, and stops before it.
    with start_worker(broker, pool="solo", perform_ping_check=False, shutdown_timeout=15):
        with celery_beat(tmp_path) as (process, log):
            ok = wait_until(finished, progress, TIMEOUT)
            assert process.poll() is None, f"beat exited early:\n{log.read_text()}"
    assert ok, f"not done within {TIMEOUT}s; worker ran {done}\nbeat log:\n{log.read_text()}"

    assert "activations.tasks.activation_expire_due" in done
    assert "activations.tasks.activation_timeout_due" in done
    assert "roles.tasks.directory_operation_run" in done  # the revoke, queued on commit
    assert "notifications.tasks.email_send" in done
    assert sorted(m.to[0] for m in mail.outbox if "timed out" in m.subject.lower()) == sorted(
        [requester.email, approver.email]
    )
    assert "Sending due task activations-expire-due" in log.read_text()
    lapsed.refresh_from_db()
    assert lapsed.closed_at >= now - timedelta(seconds=1)
