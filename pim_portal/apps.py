from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PortalConfig(AppConfig):
    """The project itself, as an app: the project-level commands (run_periodic, demo), the
    periodic jobs' run records, health and metrics."""

    name = "pim_portal"
    verbose_name = "PIM Portal"
    default = True

    def ready(self) -> None:
        from celery.signals import task_postrun, task_prerun

        from . import jobs

        task_prerun.connect(jobs.on_task_prerun, weak=False, dispatch_uid="pim-job-prerun")
        task_postrun.connect(jobs.on_task_postrun, weak=False, dispatch_uid="pim-job-postrun")


class PortalAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "pim_portal.admin_site.PortalAdminSite"
