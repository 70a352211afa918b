from django.apps import AppConfig


class ActivationsConfig(AppConfig):
    name = "activations"
    verbose_name = "Activations"

    def ready(self):
        from . import receivers  # noqa: F401
