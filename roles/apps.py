from django.apps import AppConfig


class RolesConfig(AppConfig):
    name = "roles"
    verbose_name = "Roles"

    def ready(self):
        from . import receivers  # noqa: F401  (deactivations and group leavers, from accounts)
