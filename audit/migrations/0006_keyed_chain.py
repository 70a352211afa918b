"""The keyed chain (audit.chain): a MAC per event and on the chain head, numbered checkpoints;
and append-only triggers with no session-level way around them.

Existing events keep no MAC and verify by their hash alone (history is not rewritten); every
event written from now on is keyed. Existing checkpoints keep no number.
"""

from django.db import migrations, models

# Before this migration the triggers let TRUNCATE through when the session had set
# pim.allow_audit_truncate; any session could set it. Now nothing does: only the tables'
# owner can drop or disable a trigger (README "Database roles").
STRICT_TRIGGERS_SQL = """
CREATE OR REPLACE FUNCTION audit_event_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditevent is append-only: %% refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION audit_checkpoint_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditcheckpoint is append-only: %% refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def strict_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STRICT_TRIGGERS_SQL)


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_alert_leaves_audit")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="mac",
            field=models.CharField(blank=True, default="", editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="mac_key_id",
            field=models.CharField(blank=True, default="", editable=False, max_length=16),
        ),
        migrations.AddField(
            model_name="auditchainhead",
            name="keyed_from",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="auditchainhead",
            name="checkpoints",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="auditchainhead",
            name="mac",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="auditchainhead",
            name="mac_key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.AddField(
            model_name="auditcheckpoint",
            name="number",
            field=models.BigIntegerField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="auditcheckpoint",
            name="keyed_from",
            field=models.BigIntegerField(editable=False, null=True),
        ),
        migrations.AddConstraint(
            model_name="auditcheckpoint",
            constraint=models.UniqueConstraint(fields=("number",), name="audit_checkpoint_unique_number"),
        ),
        # Going back keeps the strict triggers: no migration brings the bypass back.
        migrations.RunPython(strict_triggers, migrations.RunPython.noop),
    ]
