from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from . import receivers  # connects the signal receivers

        post_migrate.connect(
            receivers.evaluate_after_migrate, sender=self, dispatch_uid="alerts_evaluate_after_migrate"
        )
