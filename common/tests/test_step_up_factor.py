"""The step-up records its factor (issue 11): a code's step-up is fresh, but not
phishing-resistant; a passkey's is both."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory
from django_otp_webauthn.models import WebAuthnCredential

from common.step_up import (
    VERIFIED_FACTOR_SESSION_KEY,
    Factor,
    device_factor,
    mark_step_up,
    step_up_factor,
    step_up_is_fresh,
    verification_is_fresh,
)
from tests.factories import totp_device

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def stepped_up(user, device):
    request = RequestFactory().get("/")
    request.session = SessionStore()
    request.session.create()
    user.otp_device = device
    request.user = user
    mark_step_up(request, device)
    return request


def passkey(user) -> WebAuthnCredential:
    return WebAuthnCredential.objects.create(
        user=user, name="Key", credential_id=b"\x01" * 16, public_key=b"\x02" * 16, sign_count=0
    )


def test_a_code_step_up_is_fresh_but_not_phishing_resistant(requester, time_machine):
    time_machine.move_to(NOON, tick=False)
    request = stepped_up(requester, totp_device(requester))

    assert request.session[VERIFIED_FACTOR_SESSION_KEY] == "totp"
    assert step_up_factor(request) == Factor.TOTP
    assert step_up_is_fresh(request)
    assert not step_up_is_fresh(request, phishing_resistant=True)


def test_a_passkey_step_up_is_phishing_resistant_until_the_window_ends(requester, time_machine, settings):
    time_machine.move_to(NOON, tick=False)
    request = stepped_up(requester, passkey(requester))

    assert step_up_factor(request) == Factor.PASSKEY
    assert step_up_is_fresh(request, phishing_resistant=True)
    time_machine.move_to(NOON + settings.PIM_STEP_UP_WINDOW + timedelta(seconds=1), tick=False)
    assert not step_up_is_fresh(request, phishing_resistant=True)


def test_a_session_from_before_factors_were_kept_is_not_phishing_resistant(requester, time_machine):
    time_machine.move_to(NOON, tick=False)
    request = stepped_up(requester, passkey(requester))
    del request.session[VERIFIED_FACTOR_SESSION_KEY]

    assert step_up_factor(request) is None
    assert step_up_is_fresh(request)
    assert not step_up_is_fresh(request, phishing_resistant=True)


def test_the_factor_of_each_kind_of_device(requester):
    from django_otp.plugins.otp_static.models import StaticDevice

    assert device_factor(totp_device(requester)) == Factor.TOTP
    assert device_factor(StaticDevice(user=requester)) == Factor.RECOVERY_CODE
    assert device_factor(passkey(requester)) == Factor.PASSKEY
    assert not verification_is_fresh(NOON, NOON, factor="totp", phishing_resistant=True)
    assert verification_is_fresh(NOON, NOON, factor="passkey", phishing_resistant=True)
