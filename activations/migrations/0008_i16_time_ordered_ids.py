import common.ids
from django.db import migrations, models


class Migration(migrations.Migration):
    """New activation requests get time-ordered ids (common.ids.uuid7). The default lives in
    Python, so the database has nothing to change (and SQLite no table to rebuild)."""

    dependencies = [
        ("activations", "0007_i16_role_pending_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="activationrequest",
                    name="id",
                    field=models.UUIDField(
                        default=common.ids.uuid7, editable=False, primary_key=True, serialize=False
                    ),
                ),
            ],
        ),
    ]
