"""The portal's own roles govern access reviews too: PIM Administrators manage them, PIM
Auditors read them and their reports."""

from django.db import migrations

ADMIN = [
    "reviews.view_reviewdefinition",
    "reviews.add_reviewdefinition",
    "reviews.change_reviewdefinition",
    "reviews.view_reviewinstance",
    "reviews.view_reviewitem",
]
AUDITOR = ["reviews.view_reviewdefinition", "reviews.view_reviewinstance", "reviews.view_reviewitem"]


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
    dependencies = [("reviews", "0001_initial"), ("roles", "0002_builtin_catalog")]

    operations = [migrations.RunPython(grant, revoke)]
