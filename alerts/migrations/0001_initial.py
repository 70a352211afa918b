"""Alerts, taken over from audit (audit.0005 renamed the table, rows and all): state only."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("audit", "0005_alert_leaves_audit"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Alert",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("kind", models.CharField(max_length=48)),
                        ("key", models.CharField(blank=True, default="", max_length=64)),
                        (
                            "severity",
                            models.CharField(
                                choices=[("high", "High"), ("medium", "Medium"), ("low", "Low")], max_length=8
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[("open", "Open"), ("dismissed", "Dismissed"), ("resolved", "Resolved")],
                                default="open",
                                max_length=16,
                            ),
                        ),
                        ("items", models.JSONField(blank=True, default=list)),
                        ("reason", models.TextField(blank=True)),
                        ("first_raised_at", models.DateTimeField()),
                        ("last_evaluated_at", models.DateTimeField()),
                        ("dismissed_at", models.DateTimeField(blank=True, null=True)),
                        ("dismiss_reason", models.TextField(blank=True)),
                        ("dismissed_items", models.JSONField(blank=True, default=list)),
                        ("resolved_at", models.DateTimeField(blank=True, null=True)),
                        ("notified_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "dismissed_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["-first_raised_at"],
                        "permissions": [
                            ("manage_alert", "Dismiss alerts and apply their fixes"),
                            ("view_dashboard", "See the dashboard"),
                        ],
                        "indexes": [
                            models.Index(
                                condition=models.Q(("status", "resolved"), _negated=True),
                                fields=["severity"],
                                name="audit_alert_live_idx",
                            )
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                condition=models.Q(("status", "resolved"), _negated=True),
                                fields=("kind", "key"),
                                name="audit_alert_one_live_per_key",
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
