"""The alert permissions follow the model from audit to alerts: Django's content type for
'alert' (and so its auth permissions) is relabelled, and every portal role that granted
audit.view_alert, audit.manage_alert or audit.view_dashboard grants the alerts.* ones instead
(PIM Administrators and PIM Auditors, as audit.0004_portal_role_grants set them up)."""

from django.db import migrations

CODENAMES = ("view_alert", "manage_alert", "view_dashboard")


def _relabel(apps, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    moved = ContentType.objects.filter(app_label=old, model="alert").first()
    if moved is None:
        return  # a new database: post_migrate creates the alerts one
    if ContentType.objects.filter(app_label=new, model="alert").exists():
        moved.delete()  # already there (with its permissions): the old one is stale
        return
    moved.app_label = new
    moved.save(update_fields=["app_label"])


def _regrant(apps, old: str, new: str) -> None:
    Role = apps.get_model("roles", "Role")
    renamed = {f"{old}.{codename}": f"{new}.{codename}" for codename in CODENAMES}
    for role in Role.objects.exclude(grants_permissions=[]):
        if not set(renamed) & set(role.grants_permissions):
            continue
        role.grants_permissions = sorted({renamed.get(p, p) for p in role.grants_permissions})
        role.save(update_fields=["grants_permissions"])


def move_grants(apps, schema_editor):
    """Also re-run by the root conftest on a flushed test database, after audit's grants."""
    _regrant(apps, "audit", "alerts")


def forwards(apps, schema_editor):
    _relabel(apps, "audit", "alerts")
    move_grants(apps, schema_editor)


def backwards(apps, schema_editor):
    _relabel(apps, "alerts", "audit")
    _regrant(apps, "alerts", "audit")


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("roles", "0002_builtin_catalog"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
