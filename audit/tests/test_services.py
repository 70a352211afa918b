from datetime import UTC, datetime

import pytest
from django.db import transaction
from django.http import HttpResponse
from django.test import RequestFactory

from audit import chain, context
from audit.models import AuditChainHead, AuditEvent
from audit.services import AuditEntry, audit_record, audit_record_many
from pim_portal.middleware import RequestIdMiddleware
from tests.factories import DirectoryGroupFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def request_context():
    token = context.bind(
        context.RequestContext(request_id="req-0123456789", ip="203.0.113.7", user_agent="UA/1")
    )
    yield
    context.reset(token)


def test_audit_record_numbers_events_from_one_and_links_each_to_the_previous_hash():
    first = audit_record(action="test.first")
    second = audit_record(action="test.second")
    third = audit_record(action="test.third")

    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert first.prev_hash == chain.GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    stored = AuditEvent.objects.get(seq=2)
    assert stored.hash == chain.event_hash(stored.prev_hash, vars(stored)) == second.hash


def test_the_chain_head_follows_the_last_event():
    audit_record(action="test.first")
    last = audit_record(action="test.second")

    head = AuditChainHead.objects.get(pk=1)
    assert (head.last_seq, head.last_hash) == (2, last.hash)


def test_audit_record_takes_request_id_ip_and_user_agent_from_the_request_context(request_context):
    event = audit_record(action="test.event")

    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.request_id, stored.ip, stored.user_agent) == ("req-0123456789", "203.0.113.7", "UA/1")


def test_the_middleware_gives_events_written_during_a_request_its_id_and_ip(settings):
    settings.PIM_TRUSTED_PROXIES = ["198.51.100.9"]  # the load balancer that sets the id

    def view(request):
        audit_record(action="test.in_request")
        return HttpResponse()

    request = RequestFactory().post(
        "/", REMOTE_ADDR="198.51.100.9", HTTP_X_REQUEST_ID="lb-request-42", HTTP_USER_AGENT="Browser/2"
    )
    response = RequestIdMiddleware(view)(request)

    event = AuditEvent.objects.get()
    assert response["X-Request-ID"] == "lb-request-42"
    assert (event.request_id, event.ip, event.user_agent) == ("lb-request-42", "198.51.100.9", "Browser/2")


def test_events_written_outside_a_request_name_the_system_and_no_request():
    event = audit_record(action="test.job")

    assert (event.actor_id, event.actor_label) == (None, "system")
    assert (event.request_id, event.ip, event.user_agent) == ("", None, "")


def test_audit_record_many_numbers_a_batch_in_order_under_one_chain():
    audit_record(action="test.before")

    events = audit_record_many(entries=[AuditEntry(action=f"test.batch.{n}") for n in range(3)])

    assert [event.seq for event in events] == [2, 3, 4]
    assert events[0].prev_hash == AuditEvent.objects.get(seq=1).hash
    assert events[1].prev_hash == events[0].hash and events[2].prev_hash == events[1].hash
    assert list(AuditEvent.objects.values_list("action", flat=True)) == [
        "test.before",
        "test.batch.0",
        "test.batch.1",
        "test.batch.2",
    ]
    assert AuditChainHead.objects.get(pk=1).last_seq == 4


def test_audit_record_many_with_nothing_writes_nothing():
    assert audit_record_many(entries=[]) == []
    assert AuditEvent.objects.count() == 0


def test_a_rolled_back_transaction_leaves_no_gap_in_the_sequence():
    audit_record(action="test.kept")
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action="test.rolled_back")
        raise RuntimeError

    event = audit_record(action="test.next")

    assert event.seq == 2
    assert event.prev_hash == AuditEvent.objects.get(seq=1).hash


def test_events_keep_who_and_what_as_static_text_after_renames_and_deletions():
    actor = UserFactory(username="ada", display_name="Ada Admin")
    role = RoleFactory(name="Billing Reader")
    group = DirectoryGroupFactory(name="Finance")
    event = audit_record(
        action="test.granted",
        actor=actor,
        target=group,
        role=role,
        scope="/subscriptions/1",
        details={"before": None, "after": "active"},
        at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    )
    actor.display_name = "Someone Else"
    actor.save()
    role.name = "Renamed Role"
    role.save()
    group_pk = group.pk
    group.delete()

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor_label == "Ada Admin <ada>"
    assert (stored.target_type, stored.target_id, stored.target_label) == (
        "accounts.directorygroup",
        str(group_pk),
        "group Finance",
    )
    assert (stored.role_id, stored.role_label, stored.scope) == (
        role.pk,
        "Billing Reader",
        "/subscriptions/1",
    )
    assert stored.details == {"before": None, "after": "active"}
    assert stored.occurred_at == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert stored.hash == chain.event_hash(stored.prev_hash, vars(stored))
