from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpResponse
from django.test import RequestFactory
from django.views import View

from common.decorators import (
    STEP_UP_MESSAGE,
    StepUpRequiredMixin,
    VerifiedRequiredMixin,
    step_up_required,
    verified_required,
)
from common.step_up import VERIFIED_AT_SESSION_KEY, mark_step_up, step_up_is_fresh, step_up_verified_at
from tests.factories import totp_device

NOON = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)


def make_request(user, *, device=None):
    request = RequestFactory().get("/somewhere/?x=1")
    request.session = SessionStore()
    request.session.create()
    request._messages = FallbackStorage(request)
    user.otp_device = device
    request.user = user
    return request


@pytest.fixture
def stepped_up(requester, time_machine):
    """A request whose session verified a code at NOON."""
    time_machine.move_to(NOON, tick=False)
    device = totp_device(requester)
    request = make_request(requester, device=device)
    mark_step_up(request, device)
    return request


def test_step_up_within_the_window_is_fresh(stepped_up, time_machine):
    time_machine.move_to(NOON + timedelta(minutes=5), tick=False)

    assert step_up_is_fresh(stepped_up)
    assert step_up_verified_at(stepped_up) == NOON


def test_step_up_older_than_the_window_is_not_fresh(stepped_up, time_machine):
    time_machine.move_to(NOON + timedelta(minutes=5, seconds=1), tick=False)

    assert not step_up_is_fresh(stepped_up)


def test_window_follows_the_setting(stepped_up, time_machine, settings):
    settings.PIM_STEP_UP_WINDOW = timedelta(minutes=1)
    time_machine.move_to(NOON + timedelta(seconds=61), tick=False)

    assert not step_up_is_fresh(stepped_up)


def test_mark_step_up_rotates_the_session_key(requester):
    device = totp_device(requester)
    request = make_request(requester, device=None)
    key_before = request.session.session_key

    mark_step_up(request, device)

    assert request.session.session_key != key_before
    assert request.session["otp_device_id"] == device.persistent_id


def test_mark_step_up_refuses_another_persons_device(requester, outsider):
    request = make_request(requester)

    with pytest.raises(ValueError, match="does not belong"):
        mark_step_up(request, totp_device(outsider))


@pytest.mark.parametrize("stored", [None, "", "yesterday", "2026-03-02T12:00:05"])
def test_missing_or_garbled_timestamp_is_not_fresh(requester, stored):
    request = make_request(requester, device=totp_device(requester))
    if stored is not None:
        request.session[VERIFIED_AT_SESSION_KEY] = stored

    assert not step_up_is_fresh(request)


def test_timestamp_without_otp_verification_is_not_fresh(stepped_up):
    stepped_up.user.otp_device = None  # e.g. the device was deleted since

    assert not step_up_is_fresh(stepped_up)


def test_anonymous_request_is_never_fresh():
    request = RequestFactory().get("/")
    request.session = SessionStore()
    request.user = AnonymousUser()

    assert not step_up_is_fresh(request)


# --- Decorators and mixins -------------------------------------------------------------------


def ok(request):
    return HttpResponse("ok")


class OkView(VerifiedRequiredMixin, View):
    def get(self, request):
        return HttpResponse("ok")


class SensitiveView(StepUpRequiredMixin, View):
    def get(self, request):
        return HttpResponse("ok")


VERIFIED_GUARDS = [verified_required(ok), OkView.as_view()]
STEP_UP_GUARDS = [step_up_required(ok), SensitiveView.as_view()]


@pytest.mark.parametrize("view", VERIFIED_GUARDS + STEP_UP_GUARDS)
def test_guards_send_anonymous_people_to_sign_in(view, db):
    request = RequestFactory().get("/somewhere/?x=1")
    request.user = AnonymousUser()

    assert view(request).url == "/accounts/login/?next=/somewhere/%3Fx%3D1"


@pytest.mark.parametrize("view", VERIFIED_GUARDS + STEP_UP_GUARDS)
def test_guards_send_people_without_an_app_to_enrolment(view, requester):
    assert view(make_request(requester)).url == "/accounts/mfa/enrol/?next=%2Fsomewhere%2F%3Fx%3D1"


@pytest.mark.parametrize("view", VERIFIED_GUARDS + STEP_UP_GUARDS)
def test_guards_send_unverified_people_to_verify(view, requester):
    totp_device(requester)

    assert view(make_request(requester)).url == "/accounts/verify/?next=%2Fsomewhere%2F%3Fx%3D1"


@pytest.mark.parametrize("view", VERIFIED_GUARDS + STEP_UP_GUARDS)
def test_guards_let_a_fresh_step_up_through(view, stepped_up):
    assert view(stepped_up).content == b"ok"


@pytest.mark.parametrize("view", VERIFIED_GUARDS)
def test_verified_guard_does_not_care_how_old_the_step_up_is(view, stepped_up, time_machine):
    time_machine.move_to(NOON + timedelta(hours=3), tick=False)

    assert view(stepped_up).content == b"ok"


@pytest.mark.parametrize("view", STEP_UP_GUARDS)
def test_step_up_guard_asks_again_after_the_window(view, stepped_up, time_machine):
    time_machine.move_to(NOON + timedelta(minutes=6), tick=False)

    assert view(stepped_up).url == "/accounts/verify/?next=%2Fsomewhere%2F%3Fx%3D1"
    assert [str(m) for m in stepped_up._messages] == [STEP_UP_MESSAGE]
