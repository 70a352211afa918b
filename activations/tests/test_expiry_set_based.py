"""The set-based expiry sweep (activations.jobs.activation_expire_due): per batch one claim,
one UPDATE ... RETURNING, bulk inserts, one broker message; still one audit event per ended
activation, written exactly as the generic audit path would, and a chain that verifies."""

import os
import subprocess
import sys
import threading
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from activations import jobs
from activations.models import ActivationRequest
from audit import context
from audit.models import AuditEvent
from audit.services import AuditEntry, _fields
from audit.verify import audit_chain_verify
from roles.models import ActiveAssignment, DirectoryOperation
from tests.factories import UserFactory

from .helpers import HOUR, T0, eligible_for, reloaded, request_activation, role_with
from .test_concurrency import run_concurrently

Status = ActivationRequest.Status
CLOCK_START = T0

# What chaining adds (audit.services.chain_link), the same on both paths.
HASH_FIELDS = ("prev_hash", "hash", "mac", "mac_key_id", "seq", "id", "chain_version", "details_text")


def granted(count, *, now, requester=None):
    requester = requester or UserFactory(display_name="Dana Requester")
    return [
        request_activation(
            requester, eligible_for(requester, role_with(), starts_at=now), duration=HOUR, now=now
        )
        for _ in range(count)
    ]


def stored(event):
    return {
        name: getattr(event, name)
        for name in (f.attname for f in AuditEvent._meta.concrete_fields)
        if name not in HASH_FIELDS
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("clock")
def test_each_event_is_what_the_generic_audit_path_writes():
    request = granted(1, now=T0)[0]
    at = T0 + HOUR

    assert jobs.activation_expire_due(now=at) == 1

    request = reloaded(request)
    event = AuditEvent.objects.get(action="activation.expired")
    entry = AuditEntry(
        action="activation.expired",
        target=request,
        role=request.role,
        scope=request.scope,
        details={"requester": request.requester.label, "ends_at": request.ends_at},
    )
    assert stored(event) == _fields(entry, at, context.current())


@pytest.mark.django_db
@pytest.mark.usefixtures("clock")
def test_batches_end_each_activation_once_with_one_event_one_revoke_and_one_message_each(
    django_capture_on_commit_callbacks,
):
    due = granted(25, now=T0)
    later = granted(2, now=T0 + HOUR)  # not due yet
    published = []

    def publish(task, *args):
        published.append((task.name, args))
        return True

    with mock.patch("roles.directory_services.task_publish", side_effect=publish):
        with django_capture_on_commit_callbacks(execute=True):
            assert jobs.activation_expire_due(now=T0 + HOUR, batch=10) == 25

    assert {reloaded(r).status for r in due} == {Status.EXPIRED}
    assert {reloaded(r).status for r in later} == {Status.GRANTED}
    events = AuditEvent.objects.filter(action="activation.expired")
    assert sorted(events.values_list("target_id", flat=True)) == sorted(str(r.pk) for r in due)
    assert set(
        ActiveAssignment.objects.filter(activation_request__in=due).values_list("end_reason", flat=True)
    ) == {"expired"}
    revokes = DirectoryOperation.objects.filter(operation="revoke")
    assert sorted(revokes.values_list("assignment_id", flat=True)) == sorted(
        r.active_assignment_id for r in due
    )
    # one message per batch of 10, 10 and 5, carrying exactly the batch's operations
    assert [name for name, _ in published] == ["roles.tasks.directory_operations_run"] * 3
    assert sorted(pk for _, (ids,) in published for pk in ids) == sorted(revokes.values_list("pk", flat=True))
    assert audit_chain_verify().ok

    assert jobs.activation_expire_due(now=T0 + HOUR, batch=10) == 0  # nothing twice
    assert events.count() == 25 and revokes.count() == 25


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_skip_each_others_rows_and_the_chain_verifies():
    now = timezone.now()
    due = granted(30, now=now - 2 * HOUR)

    counts = run_concurrently(*(lambda: jobs.activation_expire_due(now=now, batch=4) for _ in range(2)))

    assert sum(counts) == len(due), counts
    assert {reloaded(r).status for r in due} == {Status.EXPIRED}
    events = AuditEvent.objects.filter(action="activation.expired")
    assert sorted(events.values_list("target_id", flat=True)) == sorted(str(r.pk) for r in due)
    assert DirectoryOperation.objects.filter(operation="revoke").count() == len(due)
    assert audit_chain_verify().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_locked_elsewhere_is_skipped_and_left_granted():
    now = timezone.now()
    held, free = granted(2, now=now - 2 * HOUR)
    locked, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                ActivationRequest.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(timeout=30)
        assert jobs.activation_expire_due(now=now) == 1
    finally:
        release.set()
        thread.join(timeout=30)

    assert reloaded(held).status == Status.GRANTED and reloaded(free).status == Status.EXPIRED
    assert jobs.activation_expire_due(now=now) == 1  # the next run closes it
    assert AuditEvent.objects.filter(action="activation.expired").count() == 2


@pytest.mark.django_db
@pytest.mark.usefixtures("clock")
def test_a_webhook_subscribed_to_expiries_gets_one_delivery_per_expired_activation_in_seq_order():
    from integrations.models import WebhookDelivery, WebhookSubscription

    due = granted(3, now=T0)
    subscription = WebhookSubscription.objects.create(
        name="SIEM", url="https://siem.example.org/hook", event_types=["activation.expired"],
        secret="s" * 32, created_at=T0,
    )  # fmt: skip
    other = WebhookSubscription.objects.create(
        name="Roles",
        url="https://siem.example.org/roles",
        event_types=["role.*"],
        secret="s" * 32,
        created_at=T0,
    )

    assert jobs.activation_expire_due(now=T0 + HOUR) == 3

    expired = list(AuditEvent.objects.filter(action="activation.expired").order_by("seq"))
    assert {event.target_id for event in expired} == {str(request.pk) for request in due}
    deliveries = list(WebhookDelivery.objects.order_by("seq").values_list("subscription_id", "seq", "action"))
    assert deliveries == [(subscription.pk, event.seq, "activation.expired") for event in expired]
    assert not WebhookDelivery.objects.filter(subscription=other).exists()


def _recording_batches(monkeypatch, *, workers_meet: int = 0):
    """Record which thread closed each batch of the sweep; with workers_meet, the backlog's
    worker threads wait for each other before their first batch (so every one of them gets
    one, however fast the first is)."""
    closed_by: list[tuple[str, int]] = []
    original = jobs._expire_batch
    barrier = threading.Barrier(workers_meet) if workers_meet else None
    started: set[str] = set()

    def recording(now, batch):
        name = threading.current_thread().name
        if barrier is not None and name != "MainThread" and name not in started:
            started.add(name)
            barrier.wait(timeout=30)
        count, full = original(now, batch)
        if count:
            closed_by.append((name, count))
        return count, full

    monkeypatch.setattr(jobs, "_expire_batch", recording)
    return closed_by


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_backlog_is_shared_by_the_workers_and_every_activation_ends_once(monkeypatch):
    now = timezone.now()
    due = granted(40, now=now - 2 * HOUR)
    closed_by = _recording_batches(monkeypatch, workers_meet=3)

    assert jobs.activation_expire_due(now=now, batch=3, workers=3) == 40

    # the first batch in the caller's thread, the rest shared by three threads at once
    assert closed_by[0] == ("MainThread", 3)
    assert {name for name, _ in closed_by[1:]} == {"backlog-0", "backlog-1", "backlog-2"}
    assert sum(count for _, count in closed_by) == 40
    assert {reloaded(r).status for r in due} == {Status.EXPIRED}
    events = AuditEvent.objects.filter(action="activation.expired")
    assert sorted(events.values_list("target_id", flat=True)) == sorted(str(r.pk) for r in due)
    revokes = DirectoryOperation.objects.filter(operation="revoke")
    assert sorted(revokes.values_list("assignment_id", flat=True)) == sorted(
        r.active_assignment_id for r in due
    )
    assert audit_chain_verify().ok
    assert jobs.activation_expire_due(now=now, batch=3, workers=3) == 0


@pytest.mark.django_db
@pytest.mark.usefixtures("clock")
def test_inside_a_transaction_the_backlog_stays_in_the_callers_thread(monkeypatch):
    # other connections would not see this transaction's rows: no worker threads
    due = granted(7, now=T0)
    closed_by = _recording_batches(monkeypatch)

    assert jobs.activation_expire_due(now=T0 + HOUR, batch=2, workers=4) == 7

    assert closed_by == [("MainThread", 2)] * 3 + [("MainThread", 1)]
    assert {reloaded(r).status for r in due} == {Status.EXPIRED}


@pytest.mark.django_db
@pytest.mark.usefixtures("clock")
def test_fewer_due_than_a_batch_start_no_worker(monkeypatch):
    granted(2, now=T0)
    closed_by = _recording_batches(monkeypatch)
    started = []
    monkeypatch.setattr(jobs, "in_parallel", lambda work, workers: started.append(workers) or work())

    assert jobs.activation_expire_due(now=T0 + HOUR, batch=5, workers=2) == 2

    assert closed_by == [("MainThread", 2)] and started == []


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "PIM_EXPIRY_SWEEP_WORKERS must be 1 or more, not 0"), ("two", "must be an integer, not 'two'")],
)
def test_the_number_of_sweep_workers_is_checked_at_start_up(value, message):
    env = {**os.environ, "DJANGO_DEBUG": "1", "PIM_EXPIRY_SWEEP_WORKERS": value}
    result = subprocess.run(  # noqa: S603 - this interpreter
        [sys.executable, "-c", "import pim_portal.settings"],
        env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr
