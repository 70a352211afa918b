"""Alerts move to their own app (alerts): the model leaves audit's state and its table, rows
and all, is renamed to alerts_alert; alerts.0001_initial takes the model over without touching
the database."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_portal_role_grants")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.AlterModelTable(name="alert", table="alerts_alert")],
            state_operations=[migrations.DeleteModel(name="Alert")],
        ),
    ]
