from django.apps import AppConfig


class RolesConfig(AppConfig):
    name = "roles"
    verbose_name = "Roles"

    def ready(self):
        from audit import registry

        from .models import ActiveAssignment, EligibleAssignment
        from .selectors import role_ids_named

        # The audit explorer: events about a person's direct assignments, roles by name.
        registry.principal_target_register(ActiveAssignment, user_field="user")
        registry.principal_target_register(EligibleAssignment, user_field="user")
        registry.role_finder_register(role_ids_named)

        from . import receivers  # noqa: F401  (deactivations and group leavers, from accounts)
