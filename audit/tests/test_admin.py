import pytest
from django.contrib import admin
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.admin import AuditEventAdmin
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_record
from audit.verify import audit_chain_verify

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:audit_auditevent_changelist")
ADD = reverse("admin:audit_auditevent_add")


@pytest.fixture
def event():
    return audit_record(action="role.assigned", details={"reason": "<script>alert(1)</script>"})


def _change_url(event):
    return reverse("admin:audit_auditevent_change", args=[event.pk])


def _delete_url(event):
    return reverse("admin:audit_auditevent_delete", args=[event.pk])


def _unchanged(event) -> bool:
    stored = AuditEvent.objects.filter(pk=event.pk).values_list("action", "details", "hash").first()
    return stored == ("role.assigned", {"reason": "<script>alert(1)</script>"}, event.hash)


def test_the_auditor_sees_the_audit_log_in_the_admin(verified_client, auditor, event):
    response = verified_client(auditor).get(CHANGELIST)

    assert response.status_code == 200
    assert b"role.assigned" in response.content
    assert b'name="action"' not in response.content  # no bulk actions, not even delete
    assert ADD.encode() not in response.content


def test_the_auditor_reads_an_event_with_its_details_escaped(verified_client, auditor, event):
    response = verified_client(auditor).get(_change_url(event))

    assert response.status_code == 200
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.content
    assert b"<script>alert(1)</script>" not in response.content
    assert b'name="_save"' not in response.content and b'name="_continue"' not in response.content
    assert _delete_url(event).encode() not in response.content


def test_the_auditor_cannot_add_change_or_delete_events(verified_client, auditor, event):
    client = verified_client(auditor)
    written = AuditEvent.objects.count()  # the event, and those of signing in

    assert client.get(ADD).status_code == 403
    assert client.post(ADD, {"action": "forged.event"}).status_code == 403
    assert client.post(_change_url(event), {"action": "edited"}).status_code == 403
    assert client.get(_delete_url(event)).status_code == 403
    assert client.post(_delete_url(event), {"post": "yes"}).status_code == 403
    assert _unchanged(event)
    assert AuditEvent.objects.count() == written
    assert audit_chain_verify().ok


def test_a_pim_administrator_cannot_change_or_delete_events_either(verified_client, admin, event):
    client = verified_client(admin)

    assert client.get(CHANGELIST).status_code == 200
    assert client.post(_change_url(event), {"action": "edited"}).status_code == 403
    assert client.post(_delete_url(event), {"post": "yes"}).status_code == 403
    client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    assert _unchanged(event)


def test_an_outsider_is_turned_away_from_the_audit_log(verified_client, outsider, event):
    client = verified_client(outsider)

    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert client.get(_change_url(event)).status_code == 302
    assert client.post(_change_url(event), {"action": "edited"}).status_code == 302
    assert _unchanged(event)


def test_the_chain_head_is_not_in_the_admin():
    assert not admin.site.is_registered(AuditChainHead)


def test_the_model_admin_grants_viewing_only_with_the_view_permission(auditor, outsider, event):
    model_admin = AuditEventAdmin(AuditEvent, admin.site)
    for user, can_view in ((auditor, True), (outsider, False)):
        request = RequestFactory().get(CHANGELIST)
        request.user = user
        assert model_admin.has_view_permission(request, event) is can_view
        assert model_admin.has_add_permission(request) is False
        assert model_admin.has_change_permission(request, event) is False
        assert model_admin.has_delete_permission(request, event) is False
        assert model_admin.get_actions(request) == {}


def test_the_audit_log_page_runs_the_same_queries_however_many_events(verified_client, auditor, event):
    client = verified_client(auditor)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(CHANGELIST).status_code == 200
        return len(captured)

    few = queries()
    for number in range(20):
        audit_record(action=f"role.assigned.{number}", actor=auditor)
    assert queries() == few
