"""PIM Administrators invite people in the portal (/manage/people/): their role grants
accounts.add_user too (issue 11)."""

from django.db import migrations

GRANT = "accounts.add_user"


def add_grant(apps, schema_editor):
    Role = apps.get_model("roles", "Role")
    for role in Role.objects.filter(kind="app", template_id="pim.administrator"):
        if GRANT not in role.grants_permissions:
            role.grants_permissions = [*role.grants_permissions, GRANT]
            role.save(update_fields=["grants_permissions"])


def remove_grant(apps, schema_editor):
    Role = apps.get_model("roles", "Role")
    for role in Role.objects.filter(kind="app", template_id="pim.administrator"):
        role.grants_permissions = [grant for grant in role.grants_permissions if grant != GRANT]
        role.save(update_fields=["grants_permissions"])


class Migration(migrations.Migration):
    dependencies = [("roles", "0007_i16_role_template_index")]

    operations = [migrations.RunPython(add_grant, remove_grant)]
