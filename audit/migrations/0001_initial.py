from django.conf import settings
from django.db import migrations, models

import django.db.models.deletion

GENESIS_HASH = "0" * 64

# On PostgreSQL the database itself refuses to change history, with no way around it for
# any session: only the table's owner can drop or disable the trigger, and the portal's own
# database role owns nothing (README "Database roles"). Test-database flushes disable the
# TRUNCATE trigger as the owner, from the root conftest.py only.
TRIGGER_SQL = """
CREATE FUNCTION audit_event_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditevent is append-only: %% refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change();

CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_change();
"""

DROP_TRIGGER_SQL = """
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_refuse_change();
"""


def install_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER_SQL)


def remove_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGER_SQL)


def create_chain_head(apps, schema_editor):
    AuditChainHead = apps.get_model("audit", "AuditChainHead")
    AuditChainHead.objects.get_or_create(pk=1, defaults={"last_seq": 0, "last_hash": GENESIS_HASH})


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditChainHead",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("last_seq", models.BigIntegerField(default=0)),
                ("last_hash", models.CharField(max_length=64)),
            ],
        ),
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.BigIntegerField(editable=False, unique=True)),
                ("occurred_at", models.DateTimeField(db_index=True, editable=False)),
                ("actor_label", models.CharField(editable=False, max_length=300)),
                ("action", models.CharField(db_index=True, editable=False, max_length=64)),
                (
                    "outcome",
                    models.CharField(
                        choices=[("success", "Success"), ("failure", "Failure"), ("denied", "Denied")],
                        default="success",
                        editable=False,
                        max_length=16,
                    ),
                ),
                ("target_type", models.CharField(blank=True, editable=False, max_length=64)),
                ("target_id", models.CharField(blank=True, editable=False, max_length=64)),
                ("target_label", models.CharField(blank=True, editable=False, max_length=300)),
                ("role_id", models.UUIDField(editable=False, null=True)),
                ("role_label", models.CharField(blank=True, editable=False, max_length=300)),
                ("scope", models.CharField(blank=True, editable=False, max_length=400)),
                ("details", models.JSONField(default=dict, editable=False)),
                ("request_id", models.CharField(blank=True, editable=False, max_length=64)),
                ("ip", models.GenericIPAddressField(editable=False, null=True)),
                ("user_agent", models.CharField(blank=True, editable=False, max_length=400)),
                ("prev_hash", models.CharField(editable=False, max_length=64)),
                ("hash", models.CharField(editable=False, max_length=64)),
                (
                    "actor",
                    models.ForeignKey(
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["seq"],
                "indexes": [
                    models.Index(fields=["target_type", "target_id"], name="audit_event_target_idx"),
                    models.Index(fields=["role_id", "seq"], name="audit_event_role_idx"),
                    models.Index(fields=["actor", "seq"], name="audit_event_actor_idx"),
                    models.Index(fields=["request_id"], name="audit_event_request_idx"),
                ],
            },
        ),
        migrations.RunPython(create_chain_head, migrations.RunPython.noop),
        migrations.RunPython(install_trigger, remove_trigger),
    ]
