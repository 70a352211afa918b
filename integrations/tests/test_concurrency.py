"""Several workers at once (PostgreSQL): every webhook delivery and chat message goes out once."""

import pytest
from django.utils import timezone

from activations.tests.helpers import eligible_for, request_activation, role_with
from activations.tests.test_concurrency import run_concurrently
from audit.services import audit_record
from integrations import chat, webhooks
from integrations.models import ChatMessage, WebhookSubscription
from integrations.tests.conftest import SECRET

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_four_webhook_workers_deliver_each_event_once_in_seq_order(admin, receiver):
    data = webhooks.SubscriptionInput(name="SIEM", url=receiver.url, event_types=["role.*"], secret=SECRET)
    webhooks.webhook_subscription_create(actor=admin, data=data, mfa_verified_at=timezone.now())
    receiver.server.stop()  # nothing goes out while the events are written
    seqs = [audit_record(action="role.changed").seq for _ in range(20)]
    receiver.server.start()
    WebhookSubscription.objects.update(consecutive_failures=0, next_attempt_at=None)  # back-off over

    results = run_concurrently(*[webhooks.webhook_outbox_drain] * 4)

    assert sum(results) == 20
    assert receiver.seqs == seqs


def test_four_chat_workers_send_each_message_once(requester, approver, slack, settings):
    settings.PIM_SLACK_DM_APPROVERS = True
    slack.users = {approver.email: "U0BOB"}
    slack.server.stop()
    for n in range(3):
        role = role_with(approvers=[approver], name=f"Chat race role {n}")
        request_activation(requester, eligible_for(requester, role))
    slack.server.start()
    ChatMessage.objects.update(next_attempt_at=timezone.now(), attempts=0, status="pending")

    results = run_concurrently(*[chat.chat_outbox_drain] * 4)

    assert sum(results) == 6  # per request: the channel post and the approver's DM
    assert len(slack.of("chat.postMessage")) == 6
