"""Alert pages: who sees them, the one-click fixes (through the audited services), dismissing."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Alert
from alerts.services import alerts_evaluate
from audit.models import AuditEvent
from roles.models import ActiveAssignment, EligibleAssignment, Role
from tests.factories import ActiveAssignmentFactory, EligibleAssignmentFactory, RoleFactory

pytestmark = pytest.mark.django_db


def last_seq():
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def actions_since(seq):
    return [e.action for e in AuditEvent.objects.filter(seq__gt=seq)]


def live(kind):
    return Alert.objects.filter(kind=kind).exclude(status=Alert.Status.RESOLVED).first()


def raised(kind):
    alerts_evaluate(kinds=[kind])
    return live(kind)


def fix(client, alert, item_id):
    return client.post(f"/audit/alerts/{alert.pk}/fix/", {"item": str(item_id)}, follow=True)


# --- Who sees what -------------------------------------------------------------------------


def test_outsider_gets_404_on_alerts_and_the_dashboard(verified_client, outsider):
    RoleFactory(role_settings__require_mfa=False)
    alert = raised("roles_without_mfa")
    client = verified_client(outsider)
    for url in ("/audit/alerts/", f"/audit/alerts/{alert.pk}/", "/audit/dashboard/"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/audit/alerts/{alert.pk}/dismiss/", {"reason": "x"}).status_code == 404
    assert client.post(f"/audit/alerts/{alert.pk}/fix/", {"item": "x"}).status_code == 404
    assert client.post("/audit/alerts/evaluate/").status_code == 404


def test_auditor_reads_alerts_but_cannot_fix_or_dismiss(verified_client, auditor):
    role = RoleFactory(role_settings__require_mfa=False)
    alert = raised("roles_without_mfa")
    client = verified_client(auditor)
    seq = last_seq()
    page = client.get("/audit/alerts/")
    assert page.status_code == 200 and "Roles don&#x27;t require multifactor" in page.text
    assert "Evaluate now" not in page.text
    detail = client.get(f"/audit/alerts/{alert.pk}/")
    assert detail.status_code == 200 and role.name in detail.text
    assert 'class="fix"' not in detail.text and "dismiss-form" not in detail.text
    assert client.post(f"/audit/alerts/{alert.pk}/fix/", {"item": str(role.pk)}).status_code == 404
    assert client.post(f"/audit/alerts/{alert.pk}/dismiss/", {"reason": "no"}).status_code == 404
    assert client.post("/audit/alerts/evaluate/").status_code == 404
    role.settings.refresh_from_db()
    assert role.settings.require_mfa is False and last_seq() == seq


def test_admin_sees_open_alerts_by_severity_and_the_dismissed_tab(verified_client, admin):
    RoleFactory(role_settings__require_mfa=False)
    ActiveAssignmentFactory(ends_at=None)
    alerts_evaluate(kinds=["roles_without_mfa", "permanent_active_assignments"])
    page = verified_client(admin).get("/audit/alerts/")
    assert page.status_code == 200 and "Evaluate now" in page.text
    assert page.text.index("Permanent active assignments") < page.text.index("Roles don&#x27;t require")
    dismissed = verified_client(admin).get("/audit/alerts/?tab=dismissed")
    assert "No dismissed alerts." in dismissed.text


def test_the_alert_list_runs_a_fixed_number_of_queries(verified_client, admin):
    client = verified_client(admin)
    now = timezone.now()

    def alerts(count):
        for index in range(count):
            Alert.objects.create(
                kind="break_glass_sign_in",
                key=f"{index}-{count}",
                severity="high",
                items=[{"type": "audit_event", "id": str(index), "label": "x"}],
                first_raised_at=now,
                last_evaluated_at=now,
            )
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/audit/alerts/").status_code == 200
        return len(queries)

    assert alerts(1) == alerts(30)


def test_evaluate_now_runs_the_rules(verified_client, admin):
    RoleFactory(role_settings__require_mfa=False)
    response = verified_client(admin).post("/audit/alerts/evaluate/", follow=True)
    assert "Alerts evaluated" in response.text
    assert live("roles_without_mfa") is not None


# --- Dismiss ---------------------------------------------------------------------------------


def test_admin_dismisses_an_alert_with_a_reason(verified_client, admin):
    RoleFactory(role_settings__require_mfa=False)
    alert = raised("roles_without_mfa")
    client = verified_client(admin)
    seq = last_seq()
    response = client.post(f"/audit/alerts/{alert.pk}/dismiss/", {"reason": "Lab role"}, follow=True)
    assert "Alert dismissed." in response.text and "Lab role" in response.text
    alert.refresh_from_db()
    assert alert.status == Alert.Status.DISMISSED
    assert actions_since(seq) == ["alert.dismissed"]


def test_dismissing_without_a_reason_is_refused(verified_client, admin):
    RoleFactory(role_settings__require_mfa=False)
    alert = raised("roles_without_mfa")
    response = verified_client(admin).post(f"/audit/alerts/{alert.pk}/dismiss/", {"reason": ""}, follow=True)
    assert "A reason is required." in response.text
    alert.refresh_from_db()
    assert alert.status == Alert.Status.OPEN


# --- Fixes -----------------------------------------------------------------------------------


def test_require_mfa_fix_goes_through_the_audited_service_and_resolves_the_alert(verified_client, admin):
    role = RoleFactory(role_settings__require_mfa=False)
    alert = raised("roles_without_mfa")
    client = verified_client(admin)
    seq = last_seq()
    response = fix(client, alert, role.pk)
    assert f"{role.name} now requires MFA on activation." in response.text
    role.settings.refresh_from_db()
    assert role.settings.require_mfa is True
    assert actions_since(seq) == ["role_settings.changed", "alert.resolved"]
    event = AuditEvent.objects.get(seq__gt=seq, action="role_settings.changed")
    assert event.actor == admin and event.details["changes"]["require_mfa"] == {
        "before": False,
        "after": True,
    }
    alert.refresh_from_db()
    assert alert.status == Alert.Status.RESOLVED


def test_require_approval_fix(verified_client, admin):
    role = RoleFactory(tier=Role.Tier.CRITICAL)
    alert = raised("critical_roles_without_approval")
    client = verified_client(admin)
    seq = last_seq()
    fix(client, alert, role.pk)
    role.settings.refresh_from_db()
    assert role.settings.require_approval is True
    assert "role_settings.changed" in actions_since(seq)
    assert str(role.pk) not in {item["id"] for item in Alert.objects.get(pk=alert.pk).items}


def test_require_approval_fix_is_refused_cleanly_when_nobody_could_approve(verified_client, admin):
    role = RoleFactory(tier=Role.Tier.CRITICAL, role_settings__approvals_required=3)
    alert = raised("critical_roles_without_approval")
    client = verified_client(admin)
    seq = last_seq()
    response = fix(client, alert, role.pk)
    assert response.status_code == 200
    assert "3 approval(s) are required but only 1 person(s) could approve" in response.text
    role.settings.refresh_from_db()
    assert role.settings.require_approval is False and last_seq() == seq


def test_shorten_duration_fix(verified_client, admin, settings):
    settings.PIM_ALERT_MAX_ACTIVATION_HOURS = 8
    role = RoleFactory(role_settings__activation_max_duration=timedelta(hours=20))
    alert = raised("long_activation_duration")
    client = verified_client(admin)
    seq = last_seq()
    fix(client, alert, role.pk)
    role.settings.refresh_from_db()
    assert role.settings.activation_max_duration == timedelta(hours=8)
    assert "role_settings.changed" in actions_since(seq)


def test_convert_permanent_active_to_eligible_fix(verified_client, admin):
    standing = ActiveAssignmentFactory(ends_at=None)
    alert = raised("permanent_active_assignments")
    client = verified_client(admin)
    seq = last_seq()
    response = fix(client, alert, standing.pk)
    assert "is now eligible for" in response.text
    standing.refresh_from_db()
    assert standing.ended_at is not None and standing.end_reason == ActiveAssignment.EndReason.REMOVED
    eligible = EligibleAssignment.objects.get(user=standing.user, role=standing.role)
    # the role does not allow permanent eligibility: the longest it allows
    assert eligible.ends_at is not None
    assert eligible.ends_at - eligible.starts_at == standing.role.settings.eligible_max_duration
    actions = actions_since(seq)
    assert actions[:2] == ["eligible_assignment.created", "active_assignment.removed"]
    assert "alert.resolved" in actions


def test_convert_is_permanent_when_the_role_allows_it(verified_client, admin):
    standing = ActiveAssignmentFactory(
        ends_at=None, role=RoleFactory(role_settings__eligible_allow_permanent=True)
    )
    alert = raised("permanent_active_assignments")
    fix(verified_client(admin), alert, standing.pk)
    assert EligibleAssignment.objects.get(user=standing.user, role=standing.role).ends_at is None


def test_remove_unused_eligibility_fix(verified_client, admin):
    unused = EligibleAssignmentFactory(starts_at=timezone.now() - timedelta(days=45))
    alert = raised("unused_eligibilities")
    client = verified_client(admin)
    seq = last_seq()
    response = fix(client, alert, unused.pk)
    assert "is no longer eligible for" in response.text
    unused.refresh_from_db()
    assert unused.ended_at is not None
    assert "eligible_assignment.removed" in actions_since(seq)


def test_a_fix_only_applies_to_the_alerts_own_items(verified_client, admin):
    RoleFactory(role_settings__require_mfa=False)
    other = RoleFactory(role_settings__require_mfa=False, privileged=False)
    alert = raised("roles_without_mfa")
    response = fix(verified_client(admin), alert, other.pk)
    assert "not part of this alert" in response.text
    other.settings.refresh_from_db()
    assert other.settings.require_mfa is False


def test_alerts_without_a_fix_show_no_fix_button(verified_client, admin):
    EligibleAssignmentFactory(ends_at=None, role=RoleFactory(tier=Role.Tier.CRITICAL))
    alert = raised("permanent_eligible_critical")
    page = verified_client(admin).get(f"/audit/alerts/{alert.pk}/")
    assert page.status_code == 200 and 'class="fix"' not in page.text and "dismiss-form" in page.text


def test_a_fix_needs_a_fresh_step_up(verified_client, admin, settings):
    import time_machine

    role = RoleFactory(role_settings__require_mfa=False)
    alert = raised("roles_without_mfa")
    client = verified_client(admin)
    later = timezone.now() + settings.PIM_STEP_UP_WINDOW + timedelta(minutes=1)
    with time_machine.travel(later, tick=False):
        response = client.post(f"/audit/alerts/{alert.pk}/fix/", {"item": str(role.pk)})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/verify/")
    role.settings.refresh_from_db()
    assert role.settings.require_mfa is False
