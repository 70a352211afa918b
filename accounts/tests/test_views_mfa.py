from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages
from django.contrib.sessions.backends.db import SessionStore
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from audit.models import AuditEvent
from common.step_up import VERIFIED_AT_SESSION_KEY
from tests.factories import PASSWORD, totp_code, totp_device

from .helpers import events_after, last_seq, sign_in_password, wrong_code

NOON = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)
CLOCK_START = NOON  # the shared `clock` fixture (root conftest) stops time here


# --- Verification ----------------------------------------------------------------------------


def test_sign_in_sends_an_enrolled_person_to_verify(client, requester):
    totp_device(requester)

    response = sign_in_password(client, requester)

    assert response.url == "/accounts/verify/"


def test_sign_in_sends_a_person_without_an_app_to_enrolment(client, requester):
    response = sign_in_password(client, requester)

    assert response.url == "/accounts/mfa/enrol/"


def test_sign_in_keeps_a_portal_next_through_verification(client, requester, clock):
    device = totp_device(requester)

    response = client.post(
        "/accounts/login/", {"username": requester.username, "password": PASSWORD, "next": "/accounts/mfa/"}
    )
    assert response.url == "/accounts/verify/?next=%2Faccounts%2Fmfa%2F"
    response = client.post(response.url, {"otp_token": totp_code(device)})

    assert response.url == "/accounts/mfa/"


def test_verify_page_shows_a_form(client, requester):
    totp_device(requester)
    sign_in_password(client, requester)

    response = client.get("/accounts/verify/")

    assert response.status_code == 200
    assert b'name="otp_token"' in response.content


def test_verify_rotates_the_session_key_and_records_the_time(client, requester, clock):
    device = totp_device(requester)
    sign_in_password(client, requester)
    key_before = client.session.session_key

    response = client.post("/accounts/verify/", {"otp_token": totp_code(device)})

    assert response.status_code == 302
    assert client.session.session_key != key_before
    assert client.session[VERIFIED_AT_SESSION_KEY] == NOON.isoformat()
    assert client.get("/accounts/mfa/").status_code == 200
    assert AuditEvent.objects.filter(action="mfa.verified", actor=requester).count() == 1


def test_old_session_key_is_worthless_after_verification(client, requester, clock):
    device = totp_device(requester)
    sign_in_password(client, requester)
    old_key = client.session.session_key

    client.post("/accounts/verify/", {"otp_token": totp_code(device)})

    assert not SessionStore().exists(old_key)


def test_wrong_code_shows_a_clear_error_and_is_audited(client, requester, clock):
    device = totp_device(requester)
    sign_in_password(client, requester)
    seq = last_seq()

    response = client.post("/accounts/verify/", {"otp_token": wrong_code(device)})

    assert response.status_code == 200
    assert b"That code is wrong or has already been used." in response.content
    [event] = events_after(seq)
    assert (event.action, event.outcome, event.actor) == ("mfa.failed", "failure", requester)
    assert client.get("/accounts/mfa/").status_code == 302  # still not verified


@pytest.mark.parametrize("token", ["", "abc", "1" * 5000, "12345\x00", "<script>"])
def test_bad_input_is_a_form_error_not_a_500(client, requester, token):
    totp_device(requester)
    sign_in_password(client, requester)

    response = client.post("/accounts/verify/", {"otp_token": token})

    assert response.status_code == 200
    assert b'aria-invalid="true"' in response.content
    assert b"<script>" not in response.content


def test_replayed_code_is_refused_on_the_page(client, requester, clock):
    device = totp_device(requester)
    sign_in_password(client, requester)
    code = totp_code(device)
    client.post("/accounts/verify/", {"otp_token": code})

    response = client.post("/accounts/verify/", {"otp_token": code})

    assert response.status_code == 200
    assert b"already been used" in response.content


def test_throttled_page_says_when_to_try_again(client, requester, clock):
    device = totp_device(requester)
    sign_in_password(client, requester)
    client.post("/accounts/verify/", {"otp_token": wrong_code(device)})

    response = client.post("/accounts/verify/", {"otp_token": totp_code(device)})

    assert b"Too many wrong codes; try again in 1 second." in response.content
    clock.shift(timedelta(seconds=1))
    assert client.post("/accounts/verify/", {"otp_token": totp_code(device)}).status_code == 302


@pytest.mark.parametrize(
    "evil",
    [
        "https://evil.example/",
        "//evil.example/",
        "http://evil.example/accounts/mfa/",
        "///evil.example/",
        "https:evil.example",
        "javascript:alert(1)",
        "\\\\evil.example",
    ],
)
def test_next_outside_the_portal_is_never_followed(client, requester, clock, evil):
    device = totp_device(requester)
    sign_in_password(client, requester)

    response = client.post(f"/accounts/verify/?next={evil}", {"otp_token": totp_code(device)})

    assert response.status_code == 302
    assert response.url == "/roles/"


def test_next_outside_the_portal_is_dropped_at_sign_in(client, requester):
    totp_device(requester)
    response = client.post(
        "/accounts/login/",
        {"username": requester.username, "password": PASSWORD, "next": "https://evil.example/"},
    )

    assert response.url == "/accounts/verify/"


def test_next_inside_the_portal_is_followed(client, requester, clock):
    device = totp_device(requester)
    sign_in_password(client, requester)

    response = client.post("/accounts/verify/", {"otp_token": totp_code(device), "next": "/accounts/mfa/"})

    assert response.url == "/accounts/mfa/"


def test_verify_without_an_app_sends_to_enrolment(client, requester):
    sign_in_password(client, requester)

    response = client.get("/accounts/verify/?next=/accounts/mfa/")

    assert response.url == "/accounts/mfa/enrol/?next=%2Faccounts%2Fmfa%2F"


def test_verify_needs_a_signed_in_person(client):
    response = client.get("/accounts/verify/")

    assert response.url.startswith("/accounts/login/?next=")


def test_get_on_verify_and_enrol_changes_nothing(client, requester, clock):
    device = totp_device(requester)
    codes = services.mfa_recovery_codes_regenerate(user=requester)
    sign_in_password(client, requester)
    pending = TOTPDevice.objects.create(user=requester, name="Pending", confirmed=False)
    seq = last_seq()

    for url in ("/accounts/verify/", "/accounts/mfa/enrol/"):
        for token in (totp_code(device), totp_code(pending), codes[0]):
            client.get(url, {"otp_token": token, "start": "1"})

    device.refresh_from_db()
    pending.refresh_from_db()
    assert device.last_t == -1 and not pending.confirmed
    assert TOTPDevice.objects.filter(user=requester).count() == 2
    assert StaticToken.objects.filter(device__user=requester).count() == len(codes)
    assert events_after(seq) == []


def test_sign_out_is_post_only(verified_client, requester):
    client = verified_client(requester)

    assert client.get("/accounts/logout/").status_code == 405
    assert client.get("/accounts/mfa/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/accounts/mfa/").url.startswith("/accounts/login/")


# --- Enrolment -------------------------------------------------------------------------------


def test_enrolment_page_offers_to_start_without_creating_anything(client, requester):
    sign_in_password(client, requester)

    response = client.get("/accounts/mfa/enrol/")

    assert response.status_code == 200
    assert b'name="start"' in response.content
    assert not TOTPDevice.objects.filter(user=requester).exists()


def test_enrolment_shows_a_qr_code_and_the_secret(client, requester):
    sign_in_password(client, requester)

    response = client.post("/accounts/mfa/enrol/", {"start": "1"})
    assert response.url == "/accounts/mfa/enrol/"
    response = client.get(response.url)

    device = TOTPDevice.objects.get(user=requester, confirmed=False)
    secret = response.context["secret"]
    assert secret.replace(" ", "") in device.config_url
    assert secret.encode() in response.content
    assert b'src="data:image/svg+xml;base64,' in response.content
    assert b"style=" not in response.content  # the CSP allows no inline styles


def test_confirming_enrolment_with_a_wrong_code_changes_nothing(client, requester, clock):
    sign_in_password(client, requester)
    client.post("/accounts/mfa/enrol/", {"start": "1"})
    device = TOTPDevice.objects.get(user=requester)
    seq = last_seq()

    response = client.post("/accounts/mfa/enrol/", {"otp_token": wrong_code(device)})

    assert response.status_code == 200
    assert b"That code is wrong" in response.content
    device.refresh_from_db()
    assert not device.confirmed
    assert not StaticToken.objects.filter(device__user=requester).exists()
    assert events_after(seq) == []


def test_confirming_enrolment_shows_recovery_codes_once_and_verifies_the_session(client, requester, clock):
    sign_in_password(client, requester)
    key_before = client.session.session_key
    client.post("/accounts/mfa/enrol/?next=/accounts/mfa/", {"start": "1"})
    device = TOTPDevice.objects.get(user=requester)

    response = client.post("/accounts/mfa/enrol/", {"otp_token": totp_code(device), "next": "/accounts/mfa/"})

    assert response.status_code == 200
    codes = response.context["codes"]
    assert len(codes) == 10
    for code in codes:
        assert code.encode() in response.content
    assert response["Cache-Control"].startswith("max-age=0")
    assert b'href="/accounts/mfa/"' in response.content
    assert client.session.session_key != key_before
    assert AuditEvent.objects.filter(action="mfa.enrolled", actor=requester).count() == 1
    page = client.get("/accounts/mfa/")
    assert page.status_code == 200
    for code in codes:
        assert code.encode() not in page.content


def test_adding_a_second_app_needs_a_fresh_step_up(verified_client, requester, clock):
    client = verified_client(requester)
    clock.shift(timedelta(minutes=6))

    response = client.get("/accounts/mfa/enrol/")

    assert response.url == "/accounts/verify/?next=%2Faccounts%2Fmfa%2Fenrol%2F"
    assert not TOTPDevice.objects.filter(user=requester, confirmed=False).exists()


def test_enrolment_never_shows_another_persons_pending_secret(client, requester, outsider):
    rita = services.mfa_enrolment_start(user=requester)
    sign_in_password(client, outsider)

    response = client.get("/accounts/mfa/enrol/")

    assert response.context["device"] is None
    assert rita.key.encode() not in response.content


# --- Devices page, recovery codes and step-up -----------------------------------------------


def test_devices_page_lists_only_my_own_devices(verified_client, requester, outsider):
    TOTPDevice.objects.create(user=requester, name="Rita's phone")
    client = verified_client(outsider)

    response = client.get("/accounts/mfa/")

    assert response.status_code == 200
    assert b"Rita&#x27;s phone" not in response.content
    assert [d.user for d in response.context["devices"]] == [outsider]


def test_devices_page_needs_verification(client, requester):
    totp_device(requester)
    sign_in_password(client, requester)

    response = client.get("/accounts/mfa/")

    assert response.url == "/accounts/verify/?next=%2Faccounts%2Fmfa%2F"


def test_regenerating_recovery_codes_within_the_step_up_window(verified_client, requester, clock):
    client = verified_client(requester)
    clock.shift(timedelta(minutes=4, seconds=59))
    seq = last_seq()

    response = client.post("/accounts/mfa/recovery-codes/")

    assert response.status_code == 200
    assert len(response.context["codes"]) == 10
    [event] = events_after(seq)
    assert (event.action, event.actor, event.target_label) == (
        "mfa.recovery_codes_regenerated",
        requester,
        requester.label,
    )


def test_regenerating_recovery_codes_after_the_step_up_window_asks_to_confirm(
    verified_client, requester, clock
):
    client = verified_client(requester)
    clock.shift(timedelta(minutes=5, seconds=1))
    seq = last_seq()

    response = client.post("/accounts/mfa/recovery-codes/")

    assert response.url == "/accounts/verify/?next=%2Faccounts%2Fmfa%2Frecovery-codes%2F"
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Confirm it's you: enter a code from your authenticator app to continue."
    ]
    assert events_after(seq) == []
    assert not StaticToken.objects.filter(device__user=requester).exists()

    # The new code makes the step-up fresh; back on the page, the POST goes through.
    response = client.post(response.url, {"otp_token": totp_code(client.device)})
    assert response.url == "/accounts/mfa/recovery-codes/"
    assert client.get(response.url).status_code == 200
    assert client.post(response.url).status_code == 200


def test_removing_an_app_that_is_not_the_last(verified_client, requester, clock):
    client = verified_client(requester)
    lost = TOTPDevice.objects.create(user=requester, name="Lost phone")
    seq = last_seq()

    response = client.post("/accounts/mfa/", {"device": lost.pk})

    assert response.url == "/accounts/mfa/"
    assert not TOTPDevice.objects.filter(pk=lost.pk).exists()
    [event] = events_after(seq)
    assert (event.action, event.actor, event.target_label) == (
        "mfa.device_removed",
        requester,
        requester.label,
    )
    assert event.details == {"device": "Lost phone", "sessions_ended": True}


def test_the_last_app_cannot_be_removed(verified_client, requester, clock):
    client = verified_client(requester)

    response = client.post("/accounts/mfa/", {"device": client.device.pk}, follow=True)

    assert b"This is your only authenticator app" in response.content
    assert TOTPDevice.objects.filter(pk=client.device.pk).exists()


def test_removing_an_app_needs_a_fresh_step_up(verified_client, requester, clock):
    client = verified_client(requester)
    lost = TOTPDevice.objects.create(user=requester, name="Lost phone")
    clock.shift(timedelta(minutes=10))

    response = client.post("/accounts/mfa/", {"device": lost.pk})

    assert response.url == "/accounts/verify/?next=%2Faccounts%2Fmfa%2F"
    assert TOTPDevice.objects.filter(pk=lost.pk).exists()


@pytest.mark.parametrize("device", ["theirs", "", "abc", "-1", "99999999999999999999"])
def test_outsider_cannot_remove_another_persons_app(verified_client, requester, outsider, clock, device):
    theirs = totp_device(requester)
    totp_device(requester)
    client = verified_client(outsider)
    totp_device(outsider)

    response = client.post("/accounts/mfa/", {"device": theirs.pk if device == "theirs" else device})

    assert response.status_code == 404
    assert TOTPDevice.objects.filter(pk=theirs.pk).exists()
