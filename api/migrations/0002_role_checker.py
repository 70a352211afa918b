"""The portal role "PIM Role Checker" (api.check_role, for service accounts that call the
authorization check), and the same permission for PIM Administrators."""

from django.db import migrations

CHECK_ROLE = "api.check_role"
CHECKER = {
    "name": "PIM Role Checker",
    "description": "Services that gate on roles: may ask the API whether a person holds a role "
    "(GET /api/v1/check/). Give it to service accounts as a permanent active assignment.",
    "privileged": False,
    "tier": "standard",
    "builtin": True,
    "lockout_protected": False,
    "grants_permissions": [CHECK_ROLE],
}


def add_checker(apps, schema_editor):
    Role = apps.get_model("roles", "Role")
    RoleSettings = apps.get_model("roles", "RoleSettings")
    checker, _ = Role.objects.update_or_create(kind="app", template_id="pim.checker", defaults=CHECKER)
    # A service account holds it for good: permanent active assignments are allowed.
    RoleSettings.objects.get_or_create(
        role=checker, defaults={"active_allow_permanent": True, "require_approval": False}
    )
    for admin in Role.objects.filter(kind="app", template_id="pim.administrator"):
        if CHECK_ROLE not in admin.grants_permissions:
            admin.grants_permissions = [*admin.grants_permissions, CHECK_ROLE]
            admin.save(update_fields=["grants_permissions"])


def remove_checker(apps, schema_editor):
    Role = apps.get_model("roles", "Role")
    for admin in Role.objects.filter(kind="app", template_id="pim.administrator"):
        admin.grants_permissions = [p for p in admin.grants_permissions if p != CHECK_ROLE]
        admin.save(update_fields=["grants_permissions"])
    # The checker role itself stays if anyone was ever assigned it (assignments protect it).
    Role.objects.filter(kind="app", template_id="pim.checker", builtin=True).update(grants_permissions=[])


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_initial"),
        ("roles", "0002_builtin_catalog"),
    ]

    operations = [migrations.RunPython(add_checker, remove_checker)]
