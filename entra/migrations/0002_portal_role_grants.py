"""The portal's own roles govern the Entra records too: PIM Administrators see sync runs and
drift and may test the connection; PIM Auditors see sync runs and drift."""

from django.db import migrations

ADMIN = ["entra.view_syncrun", "entra.view_driftfinding", "entra.test_connection"]
AUDITOR = ["entra.view_syncrun", "entra.view_driftfinding"]


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
    dependencies = [("entra", "0001_initial"), ("roles", "0002_builtin_catalog")]

    operations = [migrations.RunPython(grant, revoke)]
