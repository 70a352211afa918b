from datetime import UTC, datetime, timedelta

import pytest
from django_otp.plugins.otp_static.models import StaticToken

from accounts import services
from accounts.services import MfaError
from audit.models import AuditEvent
from tests.factories import totp_code, totp_device

from .helpers import events_after, last_seq, wrong_code

NOON = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)
CLOCK_START = NOON  # the shared `clock` fixture (root conftest) stops time here


def test_right_code_is_accepted_and_audited(requester, clock):
    device = totp_device(requester)
    seq = last_seq()

    verified = services.mfa_verify_code(user=requester, token=totp_code(device))

    assert verified == device
    [event] = events_after(seq)
    assert (event.action, event.actor, event.target_label) == ("mfa.verified", requester, requester.label)
    assert event.details == {"method": "totp", "device": device.name}


def test_code_with_spaces_is_accepted(requester, clock):
    device = totp_device(requester)
    code = totp_code(device)

    assert services.mfa_verify_code(user=requester, token=f" {code[:3]} {code[3:]} ") == device


def test_replayed_code_is_refused(requester, clock):
    device = totp_device(requester)
    code = totp_code(device)
    services.mfa_verify_code(user=requester, token=code)
    seq = last_seq()

    with pytest.raises(MfaError, match="wrong or has already been used"):
        services.mfa_verify_code(user=requester, token=code)

    [event] = events_after(seq)
    assert (event.action, event.outcome, event.target_label) == ("mfa.failed", "failure", requester.label)
    assert event.details == {"method": "totp", "reason": "wrong_code"}


def test_code_older_than_the_one_used_is_refused(requester, clock):
    device = totp_device(requester)
    earlier = totp_code(device, at=NOON - timedelta(seconds=30))
    services.mfa_verify_code(user=requester, token=totp_code(device))

    with pytest.raises(MfaError):
        services.mfa_verify_code(user=requester, token=earlier)


def test_expired_code_is_refused(requester, clock):
    device = totp_device(requester)

    with pytest.raises(MfaError, match="wrong"):
        services.mfa_verify_code(user=requester, token=totp_code(device, at=NOON - timedelta(minutes=5)))


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "6-digit code"),
        ("12345", "6-digit code"),
        ("12a456", "6-digit code"),
        ("1234567", "6-digit code"),
        ("١٢٣٤٥٦", "6-digit code"),  # Arabic-Indic digits are digits to Python, not to us
        ("' OR 1=1 --", "6-digit code"),
        ("1" * 65, "far too long"),
    ],
)
def test_malformed_input_is_refused_before_any_device_is_touched(requester, token, message):
    device = totp_device(requester)
    seq = last_seq()

    with pytest.raises(MfaError, match=message):
        services.mfa_verify_code(user=requester, token=token)

    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    assert events_after(seq) == []


def test_wrong_guesses_are_throttled_even_for_the_right_code(requester, clock):
    device = totp_device(requester)
    for _ in range(3):
        clock.shift(timedelta(seconds=10))
        with pytest.raises(MfaError, match="That code is wrong"):
            services.mfa_verify_code(user=requester, token=wrong_code(device))

    # Three failures: the next guess waits 1 * 2 ** 2 = 4 seconds after the last one.
    clock.shift(timedelta(seconds=3))
    with pytest.raises(MfaError, match=r"Too many wrong codes; try again in 1 second\."):
        services.mfa_verify_code(user=requester, token=totp_code(device))
    assert AuditEvent.objects.filter(action="mfa.failed").last().details["reason"] == "throttled"

    clock.shift(timedelta(seconds=1))
    assert services.mfa_verify_code(user=requester, token=totp_code(device)) == device
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


def test_throttle_message_says_how_long_to_wait(requester, clock):
    device = totp_device(requester)
    for _ in range(4):
        clock.shift(timedelta(seconds=10))
        with pytest.raises(MfaError):
            services.mfa_verify_code(user=requester, token=wrong_code(device))

    with pytest.raises(MfaError, match="try again in 8 seconds"):
        services.mfa_verify_code(user=requester, token=totp_code(device))


def test_user_without_device_is_told_so(requester):
    with pytest.raises(MfaError, match="no authenticator app"):
        services.mfa_verify_code(user=requester, token="123456")
    assert AuditEvent.objects.filter(action="mfa.failed", actor=requester).count() == 1


def test_unconfirmed_device_does_not_verify(requester, clock):
    device = totp_device(requester, confirmed=False)

    with pytest.raises(MfaError, match="no authenticator app"):
        services.mfa_verify_code(user=requester, token=totp_code(device))


def test_another_persons_code_does_not_verify(requester, outsider, clock):
    totp_device(requester)
    outsiders_device = totp_device(outsider)

    with pytest.raises(MfaError, match="wrong"):
        services.mfa_verify_code(user=requester, token=totp_code(outsiders_device))


def test_deactivated_user_cannot_verify(requester, clock):
    device = totp_device(requester)
    requester.is_active = False
    requester.save()

    with pytest.raises(MfaError, match="deactivated"):
        services.mfa_verify_code(user=requester, token=totp_code(device))


def test_second_device_works_while_the_first_is_throttled(requester, clock):
    first = totp_device(requester)
    second = totp_device(requester)
    with pytest.raises(MfaError):
        services.mfa_verify_code(user=requester, token=wrong_code(first))
    first.refresh_from_db()
    first.throttling_failure_count = 5  # as after many guesses on the first device alone
    first.save()
    clock.shift(timedelta(seconds=2))  # past the second device's 1-second delay

    assert services.mfa_verify_code(user=requester, token=totp_code(second)) == second
    first.refresh_from_db()
    assert first.throttling_failure_count == 0


# --- Enrolment and recovery codes ------------------------------------------------------------


def test_enrolment_start_replaces_an_earlier_unconfirmed_device(requester):
    first = services.mfa_enrolment_start(user=requester)
    second = services.mfa_enrolment_start(user=requester)

    assert not first.__class__.objects.filter(pk=first.pk).exists()
    assert second.confirmed is False
    assert events_after(0, action__startswith="mfa.") == []


def test_enrolment_confirm_with_the_right_code_confirms_and_gives_recovery_codes(requester, clock, settings):
    device = services.mfa_enrolment_start(user=requester)
    seq = last_seq()

    confirmed, codes = services.mfa_enrolment_confirm(user=requester, token=totp_code(device))

    assert confirmed.pk == device.pk and confirmed.confirmed
    assert len(codes) == len(set(codes)) == settings.PIM_RECOVERY_CODE_COUNT
    assert StaticToken.objects.filter(device__user=requester).count() == settings.PIM_RECOVERY_CODE_COUNT
    [event] = events_after(seq)
    assert (event.action, event.actor, event.target_label) == ("mfa.enrolled", requester, requester.label)
    assert event.details == {"device": device.name, "recovery_codes": settings.PIM_RECOVERY_CODE_COUNT}


def test_enrolment_confirm_with_a_wrong_code_changes_nothing(requester, clock):
    device = services.mfa_enrolment_start(user=requester)
    seq = last_seq()

    with pytest.raises(MfaError, match="wrong"):
        services.mfa_enrolment_confirm(user=requester, token=wrong_code(device))

    device.refresh_from_db()
    assert device.confirmed is False
    assert not StaticToken.objects.filter(device__user=requester).exists()
    assert events_after(seq) == []


def test_enrolment_confirm_code_cannot_be_replayed_to_verify(requester, clock):
    device = services.mfa_enrolment_start(user=requester)
    code = totp_code(device)
    services.mfa_enrolment_confirm(user=requester, token=code)

    with pytest.raises(MfaError, match="already been used"):
        services.mfa_verify_code(user=requester, token=code)


def test_enrolment_confirm_without_a_pending_device_is_refused(requester):
    with pytest.raises(MfaError, match="start again"):
        services.mfa_enrolment_confirm(user=requester, token="123456")


def test_recovery_code_works_once(requester, clock):
    device = services.mfa_enrolment_start(user=requester)
    _, codes = services.mfa_enrolment_confirm(user=requester, token=totp_code(device))
    seq = last_seq()

    used = services.mfa_verify_code(user=requester, token=codes[0].upper())

    assert used.name == services.RECOVERY_DEVICE_NAME
    [event] = events_after(seq)
    assert event.action == "mfa.verified" and event.details["method"] == "recovery_code"
    with pytest.raises(MfaError, match="wrong or has already been used"):
        services.mfa_verify_code(user=requester, token=codes[0])
    clock.shift(timedelta(seconds=1))  # the refused replay counts as a wrong guess
    assert services.mfa_verify_code(user=requester, token=codes[1]) == used


def test_regenerated_recovery_codes_replace_the_old_ones(requester, settings, clock):
    old = services.mfa_recovery_codes_regenerate(user=requester)
    seq = last_seq()

    new = services.mfa_recovery_codes_regenerate(user=requester)

    assert not set(old) & set(new)
    assert StaticToken.objects.filter(device__user=requester).count() == settings.PIM_RECOVERY_CODE_COUNT
    [event] = events_after(seq)
    assert (event.action, event.actor, event.target_label) == (
        "mfa.recovery_codes_regenerated",
        requester,
        requester.label,
    )
    with pytest.raises(MfaError):
        services.mfa_verify_code(user=requester, token=old[0])
    clock.shift(timedelta(seconds=1))
    services.mfa_verify_code(user=requester, token=new[0])


def test_code_is_never_written_to_the_audit_log(requester, clock):
    device = totp_device(requester)
    code = totp_code(device)
    services.mfa_verify_code(user=requester, token=code)
    with pytest.raises(MfaError):
        services.mfa_verify_code(user=requester, token=code)

    for event in AuditEvent.objects.all():
        assert code not in str(event.details)
