"""The weekly digest for PIM Administrators, over real SMTP on loopback: once a week, with
activations per role, pending approvals, open alerts and upcoming expiries."""

from datetime import timedelta

import pytest

from activations.tests.helpers import T0, approve, eligible_for, request_activation, role_with
from alerts.models import Alert
from integrations import digest
from pim_portal.periodic import PERIODIC_JOBS
from roles.selectors import portal_role
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0


def test_the_digest_reaches_pim_administrators_once_a_week(
    admin,
    requester,
    approver,
    outsider,
    smtp_mailbox,
    django_capture_on_commit_callbacks,
):
    quick = role_with(name="Digest Quick Role")
    request_activation(requester, eligible_for(requester, quick))
    waiting = role_with(approvers=[approver], name="Digest Approval Role")
    request_activation(requester, eligible_for(requester, waiting))
    eligible_for(outsider, quick, ends_at=T0 + timedelta(days=3))
    Alert.objects.create(
        kind="too_many_global_admins", key="", severity="high", items=[], reason="x",
        first_raised_at=T0, last_evaluated_at=T0,
    )  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        assert digest.weekly_digest_send() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert digest.weekly_digest_send(now=T0 + timedelta(days=2)) == 0  # the same week

    [(rcpts, message)] = [(r, m) for r, m in smtp_mailbox.received if "weekly digest" in str(m["Subject"])]
    assert rcpts == [admin.email]
    assert str(message["Subject"]) == "PIM weekly digest: 1 activation, 1 pending, 1 open alert"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "Digest Quick Role: 1" in text
    assert f"{requester} for Digest Approval Role" in text
    assert "There are too many Global Administrators" in text
    assert f"Digest Quick Role for {outsider}" in text and "(eligible), 2026-03-05 10:00 UTC" in text


def test_the_next_week_gets_its_own_digest(admin, smtp_mailbox):
    eligible_for(admin, portal_role("pim.administrator"), ends_at=None)  # an administrator all along
    assert digest.weekly_digest_send() == 1
    assert digest.weekly_digest_send(now=T0 + timedelta(days=7)) == 1


def test_the_job_is_weekly_and_off_unless_turned_on():
    [job] = [job for job in PERIODIC_JOBS if job.name == "weekly-digest"]
    assert job.when == "PIM_WEEKLY_DIGEST" and not job.enabled({"PIM_WEEKLY_DIGEST": False})
    assert job.enabled({"PIM_WEEKLY_DIGEST": True})


def test_nobody_but_administrators_gets_it(
    admin, requester, smtp_mailbox, django_capture_on_commit_callbacks
):
    UserFactory(username="someone")
    with django_capture_on_commit_callbacks(execute=True):
        digest.weekly_digest_send()
    assert smtp_mailbox.addresses() == {admin.email}


def test_approve_is_counted_as_an_activation(admin, requester, approver, smtp_mailbox):
    role = role_with(approvers=[approver], name="Digest Approval Role")
    approve(approver, request_activation(requester, eligible_for(requester, role)))
    context = digest.weekly_digest_context(now=T0 + timedelta(hours=1))
    assert context["activation_total"] == 1 and context["pending_total"] == 0
