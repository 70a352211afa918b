"""Signed webhooks: CloudEvents to a local receiver that checks the signature; in seq order,
once, after an outage; paused with an alert; replayed; and bad input refused."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from alerts.models import Alert
from audit.event_types import ALL_EVENT_TYPES
from audit.models import AuditEvent
from audit.services import audit_record
from integrations import webhooks
from integrations.models import WebhookDelivery, WebhookSubscription
from integrations.tests.conftest import SECRET

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def subscribe(admin, url, types=("role.*",), secret=SECRET, **kwargs):
    data = webhooks.SubscriptionInput(name="SIEM", url=url, event_types=list(types), secret=secret)
    return webhooks.webhook_subscription_create(
        actor=admin, data=data, mfa_verified_at=kwargs.get("mfa_verified_at", timezone.now())
    )


def events(count, action="role.changed"):
    return [audit_record(action=action, details={"n": n}).seq for n in range(count)]


def drain(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return webhooks.webhook_outbox_drain()


# --- Delivery ----------------------------------------------------------------------------------


def test_an_event_arrives_signed_as_a_cloudevent_with_its_seq_and_hash(admin, receiver):
    subscription = subscribe(admin, receiver.url)
    [seq] = events(1)

    assert webhooks.webhook_outbox_drain() == 1

    [received] = receiver.events
    event = AuditEvent.objects.get(seq=seq)
    body = received["body"]
    assert body["specversion"] == "1.0"
    assert body["id"] == f"pim-audit-{seq}" and body["type"] == "org.pim-portal.audit.role.changed"
    assert (body["auditseq"], body["audithash"]) == (seq, event.hash)
    assert (body["data"]["seq"], body["data"]["hash"], body["data"]["details"]) == (seq, event.hash, {"n": 0})
    assert received["headers"]["Content-Type"].startswith("application/cloudevents+json")
    assert receiver.bad_signatures == 0
    delivery = subscription.deliveries.get(seq=seq)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)


def test_only_subscribed_event_types_are_delivered(admin, receiver):
    subscribe(admin, receiver.url, types=["role.changed", "activation.*"])
    wanted = events(1) + events(1, action="activation.granted")
    events(1, action="group.created")

    webhooks.webhook_outbox_drain()

    assert receiver.seqs == wanted


def test_a_wrong_secret_is_caught_by_the_receiver(admin, receiver):
    subscribe(admin, receiver.url, secret="another-secret-of-at-least-32-bytes!")
    events(1)
    assert webhooks.webhook_outbox_drain() == 0
    assert receiver.bad_signatures == 1 and receiver.events == []


def test_nothing_is_written_or_sent_for_a_rolled_back_change(
    admin, receiver, django_capture_on_commit_callbacks
):
    subscribe(admin, receiver.url)
    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            audit_record(action="role.changed")
            raise RuntimeError("the change fails after its event")

    assert WebhookDelivery.objects.count() == 0
    assert webhooks.webhook_outbox_drain() == 0 and receiver.events == []


def test_after_commit_the_delivery_goes_out_at_once(admin, receiver, django_capture_on_commit_callbacks):
    subscribe(admin, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            [seq] = events(1)
        assert receiver.seqs == []  # not before the commit
    assert receiver.seqs == [seq]


def test_receiver_down_for_a_while_gets_every_event_once_in_seq_order_when_back(admin, receiver, clock):
    subscription = subscribe(admin, receiver.url)
    receiver.server.stop()
    sent = events(3)
    assert webhooks.webhook_outbox_drain() == 0  # connection refused
    sent += events(2)
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 1
    # Back-off: nothing is tried before the next attempt is due.
    assert webhooks.webhook_outbox_drain() == 0
    assert WebhookDelivery.objects.get(seq=sent[0]).attempts == 1
    clock.shift(timedelta(seconds=30))
    assert webhooks.webhook_outbox_drain() == 0
    subscription.refresh_from_db()
    assert (
        subscription.consecutive_failures == 2
        and subscription.next_attempt_at == timezone.now() + timedelta(seconds=60)
    )

    receiver.server.start()
    sent += events(1)
    clock.shift(timedelta(seconds=60))
    assert webhooks.webhook_outbox_drain() == 6
    assert webhooks.webhook_outbox_drain() == 0

    assert receiver.seqs == sent == sorted(sent)
    subscription.refresh_from_db()
    assert (subscription.consecutive_failures, subscription.next_attempt_at) == (0, None)
    assert not subscription.deliveries.filter(status="pending").exists()


def test_a_leased_subscription_is_not_sent_by_a_second_worker(admin, receiver, clock):
    subscription = subscribe(admin, receiver.url)
    events(2)
    # Another worker holds the lease (it claimed the subscription and is sending).
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        lease_until=timezone.now() + webhooks.SEND_LEASE
    )
    assert webhooks.webhook_deliver(subscription_id=subscription.pk) == 0
    assert receiver.events == []
    clock.shift(webhooks.SEND_LEASE)  # that worker died: its lease runs out
    assert webhooks.webhook_deliver(subscription_id=subscription.pk) == 2


# --- Pause, alert, resume, replay ----------------------------------------------------------------


def test_consecutive_failures_pause_the_subscription_and_raise_an_alert(
    admin, receiver, clock, settings, django_capture_on_commit_callbacks
):
    settings.PIM_WEBHOOK_PAUSE_AFTER_FAILURES = 3
    subscription = subscribe(admin, receiver.url)
    receiver.status = 500
    [seq] = events(1)
    for _ in range(3):
        drain(django_capture_on_commit_callbacks)
        clock.shift(timedelta(hours=1))

    subscription.refresh_from_db()
    assert subscription.status == WebhookSubscription.Status.PAUSED
    assert "3 deliveries failed in a row" in subscription.paused_reason
    paused = AuditEvent.objects.get(action="webhook.subscription_paused")
    assert paused.actor_label == "system" and paused.target_id == str(subscription.pk)
    alert = Alert.objects.get(kind="webhook_subscription_paused", status=Alert.Status.OPEN)
    assert alert.severity == "high" and alert.items[0]["id"] == str(subscription.pk)
    # Paused: events wait (the pause's own event too), nothing is tried.
    receiver.status = 200
    assert drain(django_capture_on_commit_callbacks) == 0 and receiver.events == []

    with django_capture_on_commit_callbacks(execute=True):
        webhooks.webhook_subscription_resume(
            actor=admin, subscription=subscription, mfa_verified_at=timezone.now()
        )

    assert receiver.seqs[0] == seq
    assert [event["body"]["data"]["action"] for event in receiver.events][-1] == "role.changed"
    alert.refresh_from_db()
    assert alert.status == Alert.Status.RESOLVED
    assert AuditEvent.objects.filter(action="webhook.subscription_resumed", actor_id=admin.pk).exists()


def test_replay_sends_again_from_a_given_seq_in_order(admin, receiver):
    subscription = subscribe(admin, receiver.url)
    sent = events(4)
    webhooks.webhook_outbox_drain()
    assert receiver.seqs == sent

    queued = webhooks.webhook_replay(
        actor=admin, subscription=subscription, from_seq=sent[2], mfa_verified_at=timezone.now()
    )
    assert queued == 2
    webhooks.webhook_outbox_drain()

    assert receiver.seqs == sent + sent[2:]
    assert AuditEvent.objects.get(action="webhook.replayed").details == {"from_seq": sent[2], "queued": 2}
    assert subscription.deliveries.filter(replay=True).count() == 2


def test_replay_does_not_double_what_is_still_waiting(admin, receiver):
    subscription = subscribe(admin, receiver.url)
    receiver.server.stop()
    sent = events(2)
    queued = webhooks.webhook_replay(
        actor=admin, subscription=subscription, from_seq=sent[0], mfa_verified_at=timezone.now()
    )
    assert queued == 0


# --- Who may, and bad input ---------------------------------------------------------------------


def test_someone_who_is_not_a_pim_administrator_is_refused_and_audited(requester, receiver):
    with pytest.raises(PermissionDenied):
        subscribe(requester, receiver.url)
    assert WebhookSubscription.objects.count() == 0
    refusal = AuditEvent.objects.get(action="admin.permission_denied")
    assert refusal.details["attempted"] == "webhook_subscription_create"


def test_without_a_fresh_mfa_code_nothing_is_saved(admin, receiver):
    with pytest.raises(PermissionDenied, match="fresh code"):
        subscribe(admin, receiver.url, mfa_verified_at=timezone.now() - timedelta(minutes=30))
    assert WebhookSubscription.objects.count() == 0


@pytest.mark.parametrize(
    ("url", "types", "secret", "field", "message"),
    [
        ("not a url", ["role.*"], SECRET, "url", "valid http(s) URL"),
        ("ftp://siem.example.org/in", ["role.*"], SECRET, "url", "valid http(s) URL"),
        ("http://siem.example.org/in", ["role.*"], SECRET, "url", "must use https"),
        ("https://user:pw@siem.example.org/in", ["role.*"], SECRET, "url", "no user name or password"),
        ("https://siem.example.org/in", ["role.chnaged"], SECRET, "event_types", "Unknown event type"),
        ("https://siem.example.org/in", ["nosuch.*"], SECRET, "event_types", "Unknown event type"),
        ("https://siem.example.org/in", [], SECRET, "event_types", "at least one"),
        ("https://siem.example.org/in", ["role.*"], "x" * 31, "secret", "at least 32 bytes"),
        ("https://siem.example.org/in", ["role.*"], "", "secret", "at least 32 bytes"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_saved(
    admin, settings, url, types, secret, field, message
):
    settings.PIM_WEBHOOK_ALLOW_HTTP = False  # production
    with pytest.raises(ValidationError) as caught:
        subscribe(admin, url, types=types, secret=secret)
    assert message in " ".join(caught.value.message_dict[field])
    assert WebhookSubscription.objects.count() == 0
    assert not AuditEvent.objects.filter(action="webhook.subscription_created").exists()


def test_https_is_accepted_in_production_and_the_secret_never_reaches_the_audit_log(admin, settings):
    settings.PIM_WEBHOOK_ALLOW_HTTP = False
    subscription = subscribe(admin, "https://siem.example.org/in", types=["*"])
    event = AuditEvent.objects.get(action="webhook.subscription_created")
    assert SECRET not in str(event.details) and event.details["event_types"] == ["*"]
    assert subscription.status == "active"


def test_every_audit_event_type_can_be_subscribed(admin, settings):
    settings.PIM_WEBHOOK_ALLOW_HTTP = False
    subscription = subscribe(admin, "https://siem.example.org/in", types=sorted(ALL_EVENT_TYPES))
    assert len(subscription.event_types) == len(ALL_EVENT_TYPES)
