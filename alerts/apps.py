from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self):
        from .receivers import evaluate_after_migrate

        post_migrate.connect(
            evaluate_after_migrate, sender=self, dispatch_uid="alerts_evaluate_after_migrate"
        )
