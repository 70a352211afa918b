import pytest

from audit.models import AppendOnlyError, AuditEvent
from audit.services import audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    return audit_record(action="test.event", details={"kept": True})


def _unchanged(event):
    stored = AuditEvent.objects.get(pk=event.pk)
    return (stored.action, stored.details, stored.hash) == ("test.event", {"kept": True}, event.hash)


def test_saving_an_existing_event_is_refused(event):
    stored = AuditEvent.objects.get(pk=event.pk)
    stored.action = "test.edited"

    with pytest.raises(AppendOnlyError):
        stored.save()
    assert _unchanged(event)


def test_deleting_an_event_is_refused(event):
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.get(pk=event.pk).delete()
    assert _unchanged(event)


def test_queryset_update_is_refused(event):
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="test.edited")
    assert _unchanged(event)


def test_bulk_update_is_refused(event):
    stored = AuditEvent.objects.get(pk=event.pk)
    stored.action = "test.edited"

    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([stored], ["action"])
    assert _unchanged(event)


def test_queryset_delete_is_refused(event):
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all()._raw_delete(using="default")
    assert _unchanged(event)
