"""The portal's own roles govern alerts and the dashboard: PIM Administrators see, dismiss and
fix alerts; PIM Auditors see them (read only). Both see the dashboard."""

from django.db import migrations

ADMIN = ["audit.view_alert", "audit.manage_alert", "audit.view_dashboard"]
AUDITOR = ["audit.view_alert", "audit.view_dashboard"]


def grant(apps, schema_editor):
    Role = apps.get_model("roles", "Role")
    for template_id, extra in (("pim.administrator", ADMIN), ("pim.auditor", AUDITOR)):
        for role in Role.objects.filter(kind="app", template_id=template_id):
            role.grants_permissions = sorted(set(role.grants_permissions) | set(extra))
            role.save(update_fields=["grants_permissions"])


def revoke(apps, schema_editor):
    Role = apps.get_model("roles", "Role")
    for template_id, extra in (("pim.administrator", ADMIN), ("pim.auditor", AUDITOR)):
        for role in Role.objects.filter(kind="app", template_id=template_id):
            role.grants_permissions = [p for p in role.grants_permissions if p not in extra]
            role.save(update_fields=["grants_permissions"])


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_alerts"), ("roles", "0002_builtin_catalog")]

    operations = [migrations.RunPython(grant, revoke)]
