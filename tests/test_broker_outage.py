"""A hung broker never holds a web request (issue 17, item 11).

The broker here is a real TCP socket on 127.0.0.1 that accepts connections and never answers
(Redis paused, a half-open connection): Celery publishes to it with the project's Redis
transport options. Activations and approvals over HTTP still answer within 5 s, their outbox
rows stay pending, and the drain jobs send them once the broker is back. Runs with or without
REDIS_URL: the Redis transport is pointed at the fake socket, not at a server.
"""

import socket
import threading
import time
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse
from kombu import pools
from kombu.utils.collections import eqhash
from rest_framework.test import APIClient

from activations.models import ActivationRequest
from activations.tests.helpers import eligible_for, role_with
from activations.tests.test_views_support import sign_in
from api.services import api_token_create
from common import broker
from notifications.models import Email
from notifications.services import email_outbox_drain
from notifications.tasks import email_send
from pim_portal.celery import app
from roles.directory_services import directory_outbox_drain
from roles.models import DirectoryOperation
from tests.factories import totp_code, totp_device

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit runs inside the request

ANSWER_WITHIN = 5.0  # seconds
# If a publish hangs anyway (the bug), the fake broker starts hanging up after this long, so
# the test fails on its timing instead of waiting forever.
GIVE_UP_AFTER = 8.0


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte, until hang_up()."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.hanging_up = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            if self.hanging_up.is_set():
                connection.close()
            else:
                self.connections.append(connection)

    def hang_up(self):
        """From now on close every connection: a blocked reader gets an error at last."""
        self.hanging_up.set()
        for connection in self.connections:
            connection.close()

    def stop(self):
        self.stopped.set()
        self.thread.join()
        self.hang_up()
        self.listener.close()


def switch_broker(**conf) -> None:
    """Point Celery at another broker: Celery's own reset after a fork makes it look up the
    pools of the broker configured now (app.close() would unregister the app)."""
    app.conf.update(conf)
    app._after_fork()


def close_broker_pools() -> None:
    """Close and forget kombu's pools of the broker configured now, so no later test finds
    them (kombu keys its pools by URL and options: a port used again would find them)."""
    key = eqhash(app.connection_for_write())
    for group in (pools.producers, pools.connections):
        if key in group:
            dict.pop(group, key).force_close_all()


@contextmanager
def hung_broker():
    """Celery publishes to a broker that never answers, with the project's Redis transport
    options and timeouts; back to the test settings (tasks run eagerly) afterwards."""
    server = SilentServer()
    watchdog = threading.Timer(GIVE_UP_AFTER, server.hang_up)
    saved = {
        key: app.conf[key]
        for key in (
            "task_always_eager",
            "broker_url",
            "broker_transport_options",
            "broker_connection_timeout",
        )
    }
    switch_broker(
        task_always_eager=False,
        broker_url=f"redis://127.0.0.1:{server.port}/0",
        broker_transport_options=settings.REDIS_TRANSPORT_OPTIONS,
        broker_connection_timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT,
    )
    broker.broker_pause_clear()
    watchdog.start()
    try:
        yield server
    finally:
        watchdog.cancel()
        server.stop()
        close_broker_pools()
        switch_broker(**saved)
        broker.broker_pause_clear()


@pytest.fixture
def silent_broker():
    with hung_broker() as server:
        yield server


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_an_activation_answers_at_once_and_its_email_goes_out_with_the_drain(requester, approver):
    eligible = eligible_for(requester, role_with(approvers=[approver]))
    client = sign_in(requester)  # before the broker hangs: signing in may queue mail too
    mail.outbox.clear()

    with hung_broker() as server:
        response, took = timed(
            lambda: client.post(
                reverse("activations:activate", args=[eligible.pk]),
                {"duration": "60", "justification": "Incident 42"},
            )
        )
        assert server.connections  # it did try the broker

    assert response.status_code == 302
    assert took < ANSWER_WITHIN
    assert ActivationRequest.objects.get().status == ActivationRequest.Status.PENDING_APPROVAL
    [email] = Email.objects.filter(to=approver.email)
    assert (email.status, email.attempts) == (Email.Status.PENDING, 0)
    assert mail.outbox == []

    assert email_outbox_drain() >= 1  # the broker is back (tasks run eagerly again)

    email.refresh_from_db()
    assert email.status == Email.Status.SENT
    assert [message.to for message in mail.outbox] == [[approver.email]]


def test_an_approval_answers_at_once_and_its_grant_and_email_wait_for_the_drains(requester, approver):
    eligible = eligible_for(requester, role_with(approvers=[approver]))
    requester_client, approver_client = sign_in(requester), sign_in(approver)
    requester_client.post(
        reverse("activations:activate", args=[eligible.pk]),
        {"duration": "60", "justification": "Incident 42"},
    )
    activation = ActivationRequest.objects.get()
    mail.outbox.clear()

    with hung_broker():
        response, took = timed(
            lambda: approver_client.post(
                reverse("activations:decide", args=[activation.pk]), {"decision": "approve", "reason": "ok"}
            )
        )

    assert response.status_code == 302
    assert took < ANSWER_WITHIN
    activation.refresh_from_db()
    assert activation.status == ActivationRequest.Status.GRANTED
    grant = DirectoryOperation.objects.get(assignment=activation.active_assignment)
    assert grant.status == DirectoryOperation.Status.PENDING
    assert Email.objects.filter(to=requester.email, status=Email.Status.PENDING).exists()
    assert mail.outbox == []

    assert directory_outbox_drain() == 1
    assert email_outbox_drain() >= 1

    grant.refresh_from_db()
    assert grant.status == DirectoryOperation.Status.DONE
    assert requester.email in [message.to[0] for message in mail.outbox]


def test_an_api_activation_answers_at_once_with_the_throttle_counts_on_the_silent_redis_too(
    requester, approver, settings
):
    eligible = eligible_for(requester, role_with(approvers=[approver]))
    _, secret = api_token_create(actor=None, user=requester, name="outage")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    body = {
        "eligible": str(eligible.pk),
        "duration": 3600,
        "justification": "Incident 42",
        "otp_code": totp_code(totp_device(requester)),
    }

    with hung_broker() as server:
        settings.CACHES = {
            **settings.CACHES,
            "api_throttle": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://127.0.0.1:{server.port}/0",
                "OPTIONS": settings.REDIS_SOCKET_OPTIONS,
            },
        }
        response, took = timed(lambda: client.post("/api/v1/activation-requests/", body, format="json"))

    assert response.status_code == 201, response.content
    assert took < ANSWER_WITHIN
    assert Email.objects.get(to=approver.email).status == Email.Status.PENDING
    assert email_outbox_drain() >= 1
    assert Email.objects.get(to=approver.email).status == Email.Status.SENT


def test_after_a_failed_publish_the_process_leaves_the_broker_alone_for_a_while(silent_broker):
    first, took_first = timed(lambda: broker.task_publish(email_send, 1))
    tried = len(silent_broker.connections)
    others, took_others = timed(lambda: [broker.task_publish(email_send, n) for n in range(2, 12)])

    assert first is False and took_first < ANSWER_WITHIN
    assert others == [False] * 10 and took_others < 0.5
    assert len(silent_broker.connections) == tried  # not one more connection

    broker.broker_pause_clear()
    assert broker.task_publish(email_send, 1) is False  # tried again: the broker is still silent
    assert len(silent_broker.connections) > tried
