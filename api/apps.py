from django.apps import AppConfig
from django.conf import settings

# Two choice sets share the field name "status" (an activation request's, an alert's): named
# here, the activation's keeps the StatusEnum name it always had in the schema.
ENUM_NAMES = {
    "StatusEnum": "activations.models.ActivationRequest.Status",
    "AlertStatusEnum": "audit.models.Alert.Status",
}


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "REST API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        spectacular = getattr(settings, "SPECTACULAR_SETTINGS", None)
        if isinstance(spectacular, dict):
            overrides = spectacular.setdefault("ENUM_NAME_OVERRIDES", {})
            for name, choices in ENUM_NAMES.items():
                overrides.setdefault(name, choices)
