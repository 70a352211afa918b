from django.apps import AppConfig


class ActivationsConfig(AppConfig):
    name = "activations"
    verbose_name = "Activations"

    def ready(self):
        from audit import registry

        from . import receivers  # noqa: F401
        from .evidence import evidence_url
        from .models import ActivationRequest

        # The audit explorer: events about a person's requests, and each request's evidence page.
        registry.principal_target_register(ActivationRequest, user_field="requester")
        registry.evidence_page_register(ActivationRequest, evidence_url)
