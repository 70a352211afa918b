import common.ids
from django.db import migrations, models


class Migration(migrations.Migration):
    """New assignments get time-ordered ids (common.ids.uuid7). The default lives in Python,
    so the database has nothing to change (and SQLite no table to rebuild)."""

    dependencies = [
        ("roles", "0014_i16_directory_eligible_partial_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name=model,
                    name="id",
                    field=models.UUIDField(
                        default=common.ids.uuid7, editable=False, primary_key=True, serialize=False
                    ),
                )
                for model in ("activeassignment", "eligibleassignment")
            ],
        ),
    ]
