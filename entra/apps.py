from django.apps import AppConfig


class EntraConfig(AppConfig):
    name = "entra"
    verbose_name = "Microsoft Entra sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from alerts.rules import outside_portal_source_register

        from . import checks, client  # noqa: F401  (registers the system check and the reset hook)
        from .alerts import drift_items

        outside_portal_source_register(drift_items)
