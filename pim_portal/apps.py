from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PortalConfig(AppConfig):
    """The project itself, as an app: the project-level commands (run_periodic, demo)."""

    name = "pim_portal"
    verbose_name = "PIM Portal"
    default = True


class PortalAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "pim_portal.admin_site.PortalAdminSite"
