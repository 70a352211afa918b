"""My roles like Entra's: Eligible / Active / Expired tabs, the pending request on its row,
Extend and Renew of direct active assignments, and times in the person's time zone."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from activations.jobs import assignment_expiry_notices
from activations.models import ActivationRequest
from audit.models import AuditEvent
from notifications.services import email_outbox_drain
from tests.factories import ActiveAssignmentFactory, UserFactory

from .test_views_support import (
    NOON,
    eligible_for,
    granted_request,
    messages_of,
    page,
    pending_request,
    reloaded,
    role_with,
    sign_in,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = NOON
DAY = timedelta(days=1)
MY_ROLES = reverse("activations:my_roles")
Status = ActivationRequest.Status


def url(name, obj) -> str:
    return reverse(f"activations:{name}", args=[obj.pk])


def direct(user, role, *, ends_at):
    return ActiveAssignmentFactory(user=user, role=role, starts_at=NOON - 60 * DAY, ends_at=ends_at)


# --- Eligible: the pending request on its row ------------------------------------------------


def test_a_pending_request_shows_on_its_row_with_approvers_and_cancel(requester, approver):
    second = UserFactory(username="bea", display_name="Bea Second")
    role = role_with(approvers=[approver, second], name="Vault Keeper")
    eligible = eligible_for(requester, role)
    request = pending_request(requester, role=role)
    client = sign_in(requester)

    html = page(client.get(MY_ROLES))

    assert url("activate", eligible) not in html  # not offered again while it waits
    assert "Pending approval" in html
    assert "waiting for\n            Arne Approver, Bea Second" in html
    assert "decide by <time" in html and "(in 1\xa0day)" in html
    assert url("cancel", request) in html

    response = client.post(url("cancel", request), {"next": MY_ROLES}, follow=True)

    assert messages_of(response) == ["Request canceled."]
    assert reloaded(request).status == Status.CANCELED
    assert url("activate", eligible) in page(response)


def test_someone_elses_pending_request_is_not_on_my_row(requester, outsider, approver):
    role = role_with(approvers=[approver])
    eligible_for(requester, role)
    pending_request(outsider, role=role)

    assert "Pending approval" not in page(sign_in(requester).get(MY_ROLES))


def test_an_active_role_says_until_when_instead_of_activate(requester):
    eligible = eligible_for(requester, role_with(name="Vault Keeper"))
    granted_request(requester, role=eligible.role)

    html = page(sign_in(requester).get(MY_ROLES))

    assert url("activate", eligible) not in html
    assert "Active</span> until <time" in html and "2026-03-02 13:00 UTC" in html


def test_an_unknown_tab_shows_eligible(requester):
    response = sign_in(requester).get(MY_ROLES, {"tab": "<script>"})

    assert response.context["tab"] == "eligible" and "<script>" not in page(response)


# --- Active: Extend a direct assignment ------------------------------------------------------


def test_extend_is_offered_on_a_direct_assignment_ending_within_14_days(requester, approver):
    role = role_with(approvers=[approver], name="Vault Keeper")
    soon = direct(requester, role, ends_at=NOON + 3 * DAY)
    later = direct(requester, role_with(name="Later Role"), ends_at=NOON + 20 * DAY)
    activation = granted_request(requester)
    client = sign_in(requester)

    html = page(client.get(MY_ROLES, {"tab": "active"}))

    assert url("extend_active", soon) in html
    assert url("extend_active", later) not in html
    assert url("extend_active", activation.active_assignment) not in html

    response = client.post(
        url("extend_active", soon), {"days": "30", "justification": "Still on call"}, follow=True
    )
    assert messages_of(response) == ["Sent for approval to 1 approver."]
    request = ActivationRequest.objects.get(kind="extend")
    assert request.active_target == soon
    html = page(client.get(MY_ROLES, {"tab": "active"}))
    assert "Extension requested" in html and url("extend_active", soon) not in html

    sign_in(approver).post(url("decide", request), {"decision": "approve"})
    soon.refresh_from_db()
    assert soon.ends_at == NOON + 33 * DAY


def test_the_ends_in_1_day_email_advice_is_true(requester, approver):
    role = role_with(approvers=[approver], name="Vault Keeper")
    assignment = direct(requester, role, ends_at=NOON + timedelta(hours=20))
    assignment_expiry_notices(now=NOON)
    email_outbox_drain(now=NOON)

    text = mail.outbox[-1].body
    assert "You can ask for an extension from My roles." in text
    assert "/roles/?tab=active" in text
    assert url("extend_active", assignment) in page(sign_in(requester).get(MY_ROLES, {"tab": "active"}))


def test_a_bad_extension_keeps_the_form_with_the_reason(requester):
    assignment = direct(requester, role_with(), ends_at=NOON + 3 * DAY)

    response = sign_in(requester).post(url("extend_active", assignment), {"days": "999", "justification": ""})

    html = page(response)
    assert "Choose between 1 and 180 days." in html and "A justification is required." in html
    assert not ActivationRequest.objects.exists()


def test_someone_elses_active_assignment_cannot_be_extended(requester, outsider):
    theirs = direct(outsider, role_with(), ends_at=NOON + 3 * DAY)
    client = sign_in(requester)

    assert client.get(url("extend_active", theirs)).status_code == 404
    assert client.post(url("extend_active", theirs), {"days": "3", "justification": "x"}).status_code == 404
    assert not ActivationRequest.objects.exists()


# --- Expired: Renew ----------------------------------------------------------------------------


def test_the_expired_tab_offers_renewal_of_eligibilities_and_direct_assignments(requester, approver):
    role = role_with(approvers=[approver], name="Vault Keeper")
    ended_active = direct(requester, role, ends_at=NOON - 5 * DAY)
    ended_eligible = eligible_for(requester, role, starts_at=NOON - 90 * DAY, ends_at=NOON - 3 * DAY)
    direct(requester, role_with(name="Long Gone"), ends_at=NOON - 40 * DAY)
    client = sign_in(requester)

    html = page(client.get(MY_ROLES, {"tab": "expired"}))

    assert url("renew_active", ended_active) in html and url("renew", ended_eligible) in html
    assert "Long Gone" not in html
    assert '<span class="badge">2</span>' in html

    client.post(url("renew_active", ended_active), {"days": "10", "justification": "Back"})
    request = ActivationRequest.objects.get(kind="renew")
    assert "Renewal requested" in page(client.get(MY_ROLES, {"tab": "expired"}))
    sign_in(approver).post(url("decide", request), {"decision": "approve"})
    assert url("renew_active", ended_active) not in page(client.get(MY_ROLES, {"tab": "expired"}))


# --- Query count ---------------------------------------------------------------------------------


def test_my_roles_queries_do_not_grow_with_pending_active_and_expired_rows(requester, approver):
    client = sign_in(requester)
    pending_request(requester, role=role_with(approvers=[approver]))  # with its eligibility
    client.get(MY_ROLES)
    with CaptureQueriesContext(connection) as few:
        client.get(MY_ROLES)
    for n in range(8):
        pending_request(requester, role=role_with(approvers=[approver]))
        granted_request(requester)
        direct(requester, role_with(), ends_at=NOON + (n + 1) * DAY)
        direct(requester, role_with(), ends_at=NOON - (n + 1) * DAY)
    with CaptureQueriesContext(connection) as many:
        response = client.get(MY_ROLES)
    roles = response.context["roles"]
    assert sum(1 for row in roles.eligible if row.pending) == 9
    assert len(roles.expired_active) == 8
    assert len(many) == len(few), "\n".join(query["sql"] for query in many.captured_queries)


# --- Time zones ----------------------------------------------------------------------------------


def test_times_are_shown_in_the_persons_time_zone(requester):
    User.objects.filter(pk=requester.pk).update(time_zone="Europe/Paris")
    eligible = eligible_for(requester, role_with(name="Vault Keeper"), ends_at=NOON + 3 * DAY)
    granted_request(requester, role=eligible.role)
    client = sign_in(requester)

    html = page(client.get(MY_ROLES))
    assert "2026-03-02 14:00 CET" in html  # granted at noon UTC for an hour: ends 13:00 UTC
    assert 'datetime="2026-03-02T13:00:00+00:00" title="2026-03-02 13:00 UTC"' in html
    assert "time-zone.js" not in html  # chosen: the browser's zone is not asked for


def test_the_browser_zone_is_recorded_once_and_never_overrides_a_choice(requester):
    client = sign_in(requester)
    time_zone_url = reverse("accounts:time_zone")
    assert "time-zone.js" in page(client.get(MY_ROLES))

    assert client.post(time_zone_url, {"time_zone": "America/New_York", "detected": "1"}).status_code == 204
    assert client.post(time_zone_url, {"time_zone": "Asia/Tokyo", "detected": "1"}).status_code == 204
    requester.refresh_from_db()
    assert requester.time_zone == "America/New_York"
    event = AuditEvent.objects.get(action="user.time_zone_changed")
    assert event.details == {"before": "", "after": "America/New_York", "source": "browser"}

    response = client.post(time_zone_url, {"time_zone": "Asia/Tokyo"}, follow=True)
    assert messages_of(response) == ["Times are now shown in Asia/Tokyo."]
    requester.refresh_from_db()
    assert requester.time_zone == "Asia/Tokyo"


def test_an_unknown_time_zone_is_refused(requester):
    client = sign_in(requester)
    time_zone_url = reverse("accounts:time_zone")

    assert client.post(time_zone_url, {"time_zone": "Mars/Olympus", "detected": "1"}).status_code == 400
    response = client.post(time_zone_url, {"time_zone": "<b>x</b>"})
    assert "Choose a time zone from the list" in page(response) and "<b>x</b>" not in page(response)
    requester.refresh_from_db()
    assert requester.time_zone == ""


def test_the_time_zone_page_needs_a_signed_in_person(client):
    response = client.post(reverse("accounts:time_zone"), {"time_zone": "Europe/Paris", "detected": "1"})

    assert response.status_code == 302
    assert not AuditEvent.objects.filter(action="user.time_zone_changed").exists()


def test_relative_times_are_said_to_the_nearest_minute():
    from activations.templatetags.activations_extras import relative

    assert relative(NOON + timedelta(hours=8, seconds=-1), NOON) == "in 8\xa0hours"
    assert relative(NOON - 2 * DAY, NOON) == "2\xa0days ago"
    assert relative(NOON + timedelta(seconds=20), NOON) == "now"
    assert relative(None, NOON) == ""
