"""Alerts moved out of audit (audit.0005, alerts.0001-0002): an existing database keeps its
alert rows, and the portal roles keep the same rights on them, now named alerts.*."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType as LiveContentType
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from alerts.models import Alert
from roles.models import Role as LiveRole

BEFORE = [("audit", "0004_portal_role_grants")]
STATE_BEFORE = [
    *BEFORE,
    ("contenttypes", "0002_remove_content_type_name"),
    ("auth", "0012_alter_user_first_name_max_length"),
]
AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    return executor


def _grants(Role, template_id):
    return set(Role.objects.get(kind="app", template_id=template_id).grants_permissions)


@pytest.mark.django_db(transaction=True)
def test_the_move_keeps_alert_rows_and_the_portal_roles_rights():
    try:
        old = _migrate(BEFORE).loader.project_state(STATE_BEFORE).apps
        OldAlert = old.get_model("audit", "Alert")
        ContentType = old.get_model("contenttypes", "ContentType")
        Role = old.get_model("roles", "Role")
        row = OldAlert.objects.create(
            kind="roles_without_mfa",
            severity="medium",
            items=[{"type": "role", "id": "1", "label": "Payroll Administrator"}],
            reason="Kept across the move",
            first_raised_at=AT,
            last_evaluated_at=AT,
        )
        content_type = ContentType.objects.get(app_label="audit", model="alert")
        custom = Role.objects.create(name="Alert Reader", kind="app", grants_permissions=["audit.view_alert"])
        assert {"audit.view_alert", "audit.manage_alert"} <= _grants(Role, "pim.administrator")
    finally:
        _migrate(None)

    kept = Alert.objects.get(pk=row.pk)
    assert (kept.kind, kept.severity, kept.status, kept.reason) == (
        "roles_without_mfa",
        "medium",
        "open",
        "Kept across the move",
    )
    assert kept.items == [{"type": "role", "id": "1", "label": "Payroll Administrator"}]
    assert Alert._meta.db_table == "alerts_alert"

    moved = LiveContentType.objects.get_for_model(Alert)
    assert moved.pk == content_type.pk and moved.app_label == "alerts"
    assert not LiveContentType.objects.filter(app_label="audit", model="alert").exists()
    assert set(Permission.objects.filter(content_type=moved).values_list("codename", flat=True)) >= {
        "view_alert",
        "manage_alert",
        "view_dashboard",
    }

    admin_grants = _grants(LiveRole, "pim.administrator")
    assert {"alerts.view_alert", "alerts.manage_alert", "alerts.view_dashboard"} <= admin_grants
    assert {"alerts.view_alert", "alerts.view_dashboard"} <= _grants(LiveRole, "pim.auditor")
    assert "alerts.manage_alert" not in _grants(LiveRole, "pim.auditor")
    assert not any(p.startswith("audit.") and p.endswith(("_alert", "_dashboard")) for p in admin_grants)
    assert LiveRole.objects.get(pk=custom.pk).grants_permissions == ["alerts.view_alert"]

    # The table works as before: new ids follow on, one live alert per kind and key.
    fresh = Alert.objects.create(
        kind="stale_accounts", severity="medium", first_raised_at=AT, last_evaluated_at=AT
    )
    assert fresh.pk > kept.pk
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(
            kind="roles_without_mfa", severity="medium", first_raised_at=AT, last_evaluated_at=AT
        )
