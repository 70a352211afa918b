"""The alert evaluation, dismissing and re-raising, and the email to the security admins."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from alerts.models import Alert
from alerts.services import alert_dismiss, alerts_evaluate
from audit.models import AuditEvent
from notifications.models import Email
from tests.factories import ActiveAssignmentFactory, RoleFactory

pytestmark = pytest.mark.django_db

KIND = "permanent_active_assignments"


def events(action, since=0):
    return list(AuditEvent.objects.filter(action=action, seq__gt=since))


def last_seq():
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def live(kind=KIND):
    return Alert.objects.filter(kind=kind).exclude(status=Alert.Status.RESOLVED)


def test_evaluation_raises_an_alert_with_its_items_and_audits_it():
    standing = ActiveAssignmentFactory(ends_at=None)
    seq = last_seq()
    result = alerts_evaluate(kinds=[KIND])
    alert = live().get()
    assert result.raised == [alert]
    assert alert.severity == Alert.Severity.HIGH and alert.status == Alert.Status.OPEN
    assert alert.items[0]["id"] == str(standing.pk) and alert.items[0]["type"] == "active_assignment"
    assert "Standing administrator access" in alert.reason
    [event] = events("alert.raised", seq)
    assert event.target_id == str(alert.pk) and event.details["kind"] == KIND


def test_evaluation_is_idempotent():
    ActiveAssignmentFactory(ends_at=None)
    alerts_evaluate()
    seq = last_seq()
    result = alerts_evaluate()
    assert result.raised == [] and result.resolved == []
    assert last_seq() == seq  # nothing changed, nothing audited
    assert live().count() == 1


def test_an_alert_resolves_when_its_condition_is_gone():
    standing = ActiveAssignmentFactory(ends_at=None)
    alerts_evaluate(kinds=[KIND])
    standing.ended_at = timezone.now()
    standing.save()
    seq = last_seq()
    result = alerts_evaluate(kinds=[KIND])
    [alert] = result.resolved
    assert alert.status == Alert.Status.RESOLVED and alert.resolved_at is not None
    assert [e.target_id for e in events("alert.resolved", seq)] == [str(alert.pk)]


def test_dismiss_is_audited_with_its_reason(admin):
    ActiveAssignmentFactory(ends_at=None)
    alerts_evaluate(kinds=[KIND])
    seq = last_seq()
    alert = alert_dismiss(actor=admin, alert=live().get(), reason="Service account, accepted risk")
    assert alert.status == Alert.Status.DISMISSED and alert.dismissed_by == admin
    [event] = events("alert.dismissed", seq)
    assert event.actor == admin and event.details["reason"] == "Service account, accepted risk"


def test_dismiss_needs_a_reason_and_the_right(admin, auditor):
    ActiveAssignmentFactory(ends_at=None)
    alerts_evaluate(kinds=[KIND])
    alert = live().get()
    with pytest.raises(ValidationError):
        alert_dismiss(actor=admin, alert=alert, reason="  ")
    with pytest.raises(PermissionDenied):
        alert_dismiss(actor=auditor, alert=alert, reason="No")


def test_a_dismissed_alert_stays_dismissed_while_the_condition_persists(admin):
    ActiveAssignmentFactory(ends_at=None)
    alerts_evaluate(kinds=[KIND])
    alert_dismiss(actor=admin, alert=live().get(), reason="Known")
    seq = last_seq()
    alerts_evaluate(kinds=[KIND])
    assert live().get().status == Alert.Status.DISMISSED
    assert last_seq() == seq


def test_a_dismissed_alert_is_raised_again_when_the_condition_resolves_and_returns(admin):
    standing = ActiveAssignmentFactory(ends_at=None)
    alerts_evaluate(kinds=[KIND])
    dismissed = alert_dismiss(actor=admin, alert=live().get(), reason="Known")
    standing.ended_at = timezone.now()
    standing.save()
    alerts_evaluate(kinds=[KIND])
    dismissed.refresh_from_db()
    assert dismissed.status == Alert.Status.RESOLVED
    ActiveAssignmentFactory(ends_at=None, role=standing.role, user=standing.user)
    seq = last_seq()
    alerts_evaluate(kinds=[KIND])
    again = live().get()
    assert again.pk != dismissed.pk and again.status == Alert.Status.OPEN
    assert [e.target_id for e in events("alert.raised", seq)] == [str(again.pk)]


def test_a_dismissed_alert_is_raised_again_when_new_items_are_affected(admin):
    ActiveAssignmentFactory(ends_at=None)
    alerts_evaluate(kinds=[KIND])
    alert = alert_dismiss(actor=admin, alert=live().get(), reason="Known")
    ActiveAssignmentFactory(ends_at=None)
    seq = last_seq()
    alerts_evaluate(kinds=[KIND])
    alert.refresh_from_db()
    assert alert.status == Alert.Status.OPEN and len(alert.items) == 2
    [event] = events("alert.raised", seq)
    assert event.details["because"] == "new affected items since dismissed"


def test_new_high_alerts_email_the_security_admins_once(admin, settings):
    settings.PIM_ALERT_EMAILS = []
    ActiveAssignmentFactory(ends_at=None)
    alerts_evaluate()
    alerts_evaluate()
    emails = Email.objects.filter(template="alert-raised")
    assert [e.to for e in emails] == [admin.email]
    assert "Permanent active assignments" in emails[0].subject


def test_alert_emails_go_to_the_configured_addresses(settings):
    settings.PIM_ALERT_EMAILS = ["soc@example.test"]
    ActiveAssignmentFactory(ends_at=None)
    alerts_evaluate(kinds=[KIND])
    assert list(Email.objects.filter(template="alert-raised").values_list("to", flat=True)) == [
        "soc@example.test"
    ]


def test_medium_and_low_alerts_send_no_email(settings):
    settings.PIM_ALERT_EMAILS = ["soc@example.test"]
    RoleFactory(role_settings__require_mfa=False)
    alerts_evaluate(kinds=["roles_without_mfa"])
    assert live("roles_without_mfa").get().severity == Alert.Severity.MEDIUM
    assert not Email.objects.filter(template="alert-raised").exists()


def test_the_database_keeps_one_live_alert_per_kind_and_key():
    from django.db import IntegrityError, transaction

    now = timezone.now()
    fields = {"kind": KIND, "severity": "high", "first_raised_at": now, "last_evaluated_at": now}
    Alert.objects.create(**fields)
    Alert.objects.create(**fields, status=Alert.Status.RESOLVED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(**fields)


def test_break_glass_sign_ins_raise_high_alerts_that_resolve_after_the_window(settings):
    from audit.services import audit_record
    from tests.factories import UserFactory

    settings.PIM_ALERT_EMAILS = ["soc@example.test"]
    root = UserFactory(is_superuser=True)
    audit_record(action="auth.break_glass_sign_in", actor=root, target=root)
    alerts_evaluate(kinds=["break_glass_sign_in"])
    assert live("break_glass_sign_in").get().severity == Alert.Severity.HIGH
    later = timezone.now() + timedelta(days=settings.PIM_ALERT_BREAK_GLASS_DAYS + 1)
    alerts_evaluate(kinds=["break_glass_sign_in"], now=later)
    assert not live("break_glass_sign_in").exists()


def test_run_periodic_evaluates_alerts():
    from io import StringIO

    from django.core.management import call_command

    ActiveAssignmentFactory(ends_at=None)
    out = StringIO()
    call_command("run_periodic", stdout=out)
    assert "alerts raised:" in out.getvalue()
    assert live().exists()
