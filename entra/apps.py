from django.apps import AppConfig


class EntraConfig(AppConfig):
    name = "entra"
    verbose_name = "Microsoft Entra sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks, client  # noqa: F401  (registers the system check and the reset hook)
