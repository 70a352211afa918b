"""The webhook pages: PIM Administrators only (everyone else 404), changes behind a fresh
step-up, bad input shown on the form with nothing saved, the delivery log, a fixed number of
queries for the list."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from integrations import webhooks
from integrations.models import WebhookSubscription
from integrations.tests.conftest import SECRET

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def make(admin, url="https://siem.example.org/in", name="SIEM", types=("role.*",)):
    data = webhooks.SubscriptionInput(name=name, url=url, event_types=list(types), secret=SECRET)
    return webhooks.webhook_subscription_create(actor=admin, data=data, mfa_verified_at=timezone.now())


@pytest.mark.parametrize("who", ["requester", "approver", "auditor", "outsider"])
def test_anyone_but_a_pim_administrator_gets_404_everywhere(verified_client, admin, who, request):
    subscription = make(admin)
    client = verified_client(request.getfixturevalue(who))
    for url in [
        "/integrations/webhooks/",
        "/integrations/webhooks/new/",
        f"/integrations/webhooks/{subscription.pk}/",
        f"/integrations/webhooks/{subscription.pk}/edit/",
    ]:
        assert client.get(url).status_code == 404, url
    assert client.post(f"/integrations/webhooks/{subscription.pk}/delete/").status_code == 404
    assert client.post("/integrations/webhooks/new/", {"name": "x"}).status_code == 404
    assert WebhookSubscription.objects.count() == 1


def test_an_administrator_creates_a_webhook(verified_client, admin):
    client = verified_client(admin)
    form = client.get("/integrations/webhooks/new/")
    assert form.status_code == 200 and len(form.context["form"].initial["secret"]) >= 32

    response = client.post(
        "/integrations/webhooks/new/",
        {
            "name": "SIEM",
            "url": "https://siem.example.org/in",
            "event_types": "activation.*\nrole.changed",
            "secret": SECRET,
        },
    )

    subscription = WebhookSubscription.objects.get()
    assert (
        response.status_code == 302 and response["Location"] == f"/integrations/webhooks/{subscription.pk}/"
    )
    assert subscription.event_types == ["activation.*", "role.changed"] and subscription.secret == SECRET
    assert AuditEvent.objects.filter(action="webhook.subscription_created", actor_id=admin.pk).exists()


def test_bad_input_is_shown_on_the_form_and_nothing_is_saved(verified_client, admin, settings):
    settings.PIM_WEBHOOK_ALLOW_HTTP = False
    response = verified_client(admin).post(
        "/integrations/webhooks/new/",
        {
            "name": "SIEM",
            "url": "http://siem.example.org/in",
            "event_types": "activation.granted\nno.such",
            "secret": "short",
        },
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "must use https" in errors["url"][0]
    assert "Unknown event type “no.such”" in errors["event_types"][0]
    assert "at least 32 bytes" in errors["secret"][0]
    assert WebhookSubscription.objects.count() == 0


def test_a_stale_step_up_is_sent_to_verify_first(verified_client, admin, clock):
    subscription = make(admin)
    client = verified_client(admin)
    clock.shift(timedelta(minutes=10))
    for url in ["/integrations/webhooks/new/", f"/integrations/webhooks/{subscription.pk}/edit/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/verify/")
    response = client.post(f"/integrations/webhooks/{subscription.pk}/delete/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/verify/")
    assert WebhookSubscription.objects.count() == 1
    # Reading needs no step-up.
    assert client.get(f"/integrations/webhooks/{subscription.pk}/").status_code == 200


def test_the_detail_page_shows_the_delivery_log_and_replay_queues_again(verified_client, admin):
    subscription = make(admin)
    seqs = [audit_record(action="role.changed").seq for _ in range(3)]
    client = verified_client(admin)

    page = client.get(f"/integrations/webhooks/{subscription.pk}/")
    assert [d.seq for d in page.context["log"]] == seqs[::-1] and page.context["waiting"] == 3

    response = client.post(f"/integrations/webhooks/{subscription.pk}/pause/")
    subscription.refresh_from_db()
    assert response.status_code == 302 and subscription.status == "paused"
    client.post(f"/integrations/webhooks/{subscription.pk}/resume/")
    subscription.refresh_from_db()
    assert subscription.status == "active"

    bad = client.post(f"/integrations/webhooks/{subscription.pk}/replay/", {"from_seq": "x"}, follow=True)
    assert "Give the sequence number" in bad.content.decode()


def test_editing_keeps_the_secret_unless_a_new_one_is_given(verified_client, admin):
    subscription = make(admin)
    client = verified_client(admin)
    client.post(
        f"/integrations/webhooks/{subscription.pk}/edit/",
        {"name": "SIEM 2", "url": "https://siem.example.org/v2", "event_types": "*", "secret": ""},
    )
    subscription.refresh_from_db()
    assert (subscription.name, subscription.event_types, subscription.secret) == ("SIEM 2", ["*"], SECRET)
    changed = AuditEvent.objects.get(action="webhook.subscription_changed")
    assert SECRET not in str(changed.details)


def test_deleting_removes_it(verified_client, admin):
    subscription = make(admin)
    response = verified_client(admin).post(f"/integrations/webhooks/{subscription.pk}/delete/")
    assert response["Location"] == "/integrations/webhooks/"
    assert WebhookSubscription.objects.count() == 0
    assert AuditEvent.objects.filter(action="webhook.subscription_deleted").exists()


def test_the_list_takes_a_fixed_number_of_queries(verified_client, admin, django_assert_max_num_queries):
    client = verified_client(admin)
    for n in range(3):
        make(admin, name=f"SIEM {n}")
    client.get("/integrations/webhooks/")  # warm the session and permission caches
    with django_assert_max_num_queries(12) as few:
        client.get("/integrations/webhooks/")
    for n in range(3, 10):
        make(admin, name=f"SIEM {n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/integrations/webhooks/")
    assert len(response.context["subscriptions"]) == 10
