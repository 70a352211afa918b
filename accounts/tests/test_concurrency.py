"""Races that only a real database shows (SQLite serialises everything)."""

import threading

import pytest
from django.db import connection

from accounts import services
from audit.models import AuditEvent
from tests.factories import totp_code, totp_device

THREADS = 10


def run_concurrently(target, count=THREADS):
    """Call target() from `count` threads at once, each on its own connection; return results."""
    barrier = threading.Barrier(count)
    results = []

    def worker():
        try:
            barrier.wait()
            results.append(target())
        except Exception as error:  # the outcome is what the test inspects
            results.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_totp_code_posted_ten_times_at_once_succeeds_once(requester):
    device = totp_device(requester)
    code = totp_code(device)

    results = run_concurrently(lambda: services.mfa_verify_code(user=requester, token=code))

    successes = [r for r in results if not isinstance(r, Exception)]
    refusals = [r for r in results if isinstance(r, services.MfaError)]
    assert len(successes) == 1 and len(refusals) == THREADS - 1, results
    assert AuditEvent.objects.filter(action="mfa.verified").count() == 1
    assert AuditEvent.objects.filter(action="mfa.failed").count() == THREADS - 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_recovery_code_posted_ten_times_at_once_succeeds_once(requester):
    code = services.mfa_recovery_codes_regenerate(user=requester)[0]

    results = run_concurrently(lambda: services.mfa_verify_code(user=requester, token=code))

    assert len([r for r in results if not isinstance(r, Exception)]) == 1, results
    assert all(isinstance(r, services.MfaError) for r in results if isinstance(r, Exception))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deactivations_end_with_one_event(requester):
    results = run_concurrently(
        lambda: services.user_deactivate(actor=None, user=requester, reason="Left"), count=5
    )

    assert len([r for r in results if not isinstance(r, Exception)]) == 1, results
    assert all(isinstance(r, services.AccountError) for r in results if isinstance(r, Exception))
    assert AuditEvent.objects.filter(action="user.deactivated").count() == 1
