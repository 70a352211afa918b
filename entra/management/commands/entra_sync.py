from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from entra.models import SyncRun
from entra.services import SyncAlreadyRunning, entra_sync_run


class Command(BaseCommand):
    help = (
        "Import role definitions, users, role-assignable groups, role settings and eligibilities "
        "from Microsoft Entra ID, and report (or remove) assignments made outside the portal."
    )

    def handle(self, *args, **options):
        if not settings.ENTRA_SYNC_ENABLED:
            raise CommandError(
                "The Entra sync is off: set ENTRA_SYNC_ENABLED and its settings (README “Entra set-up”)."
            )
        try:
            run = entra_sync_run(trigger=SyncRun.Trigger.COMMAND)
        except SyncAlreadyRunning as error:
            raise CommandError(str(error)) from None
        for kind, counts in run.counts.items():
            summary = ", ".join(f"{outcome} {number}" for outcome, number in sorted(counts.items()))
            self.stdout.write(f"{kind}: {summary}")
        for problem in run.errors[:20]:
            self.stderr.write(f"{problem['kind']} {problem['item']}: {problem['message']}")
        if len(run.errors) > 20:
            self.stderr.write(f"... and more: see the sync run in the admin ({run.error_count} errors).")
        if run.status == SyncRun.Status.FAILED:
            raise CommandError("The Entra sync failed.")
        self.stdout.write(f"Entra sync {run.get_status_display().lower()}.")
