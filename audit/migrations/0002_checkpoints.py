from django.db import migrations, models

# Checkpoints are append-only like the events (0001): on PostgreSQL the database refuses
# UPDATE, DELETE and TRUNCATE, to every session (see 0001 for test-database flushes).
TRIGGER_SQL = """
CREATE FUNCTION audit_checkpoint_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditcheckpoint is append-only: %% refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_checkpoint_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_refuse_change();

CREATE TRIGGER audit_checkpoint_no_truncate
    BEFORE TRUNCATE ON audit_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoint_refuse_change();
"""

DROP_TRIGGER_SQL = """
DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON audit_auditcheckpoint;
DROP TRIGGER IF EXISTS audit_checkpoint_no_update_delete ON audit_auditcheckpoint;
DROP FUNCTION IF EXISTS audit_checkpoint_refuse_change();
"""


def install_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER_SQL)


def remove_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGER_SQL)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.BigIntegerField(editable=False)),
                ("hash", models.CharField(editable=False, max_length=64)),
                ("created_at", models.DateTimeField(editable=False)),
                ("previous_id", models.BigIntegerField(editable=False, null=True)),
                ("previous_digest", models.CharField(blank=True, editable=False, max_length=64)),
                ("key_id", models.CharField(editable=False, max_length=32)),
                ("signature", models.CharField(editable=False, max_length=128)),
            ],
            options={
                "ordering": ["id"],
                "constraints": [models.UniqueConstraint(fields=("previous_id",), name="audit_checkpoint_one_successor")],
            },
        ),
        migrations.RunPython(install_trigger, remove_trigger),
    ]
