"""Chain version 3 (audit.chain): a cheap, unambiguous encoding of each event for its hash.

Existing events are version 2 and keep verifying under it (history is not rewritten: adding
a column with a constant default touches no row, so the append-only triggers fire on none;
a plain smallint, so no CHECK scans the table either). Events written from now on are
version 3 and carry their details' canonical JSON text.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("audit", "0007_i16_redundant_fk_indexes")]

    operations = [
        # Existing rows get 2; the model's default for new rows is 3 (the writer names it
        # anyway).
        migrations.AddField(
            model_name="auditevent",
            name="chain_version",
            field=models.SmallIntegerField(default=2, editable=False),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="chain_version",
            field=models.SmallIntegerField(default=3, editable=False),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="details_text",
            field=models.TextField(blank=True, default="", editable=False),
        ),
    ]
