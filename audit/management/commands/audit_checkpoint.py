from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from audit.checkpoints import audit_checkpoint_write


class Command(BaseCommand):
    help = "Sign the audit chain head now (the audit-checkpoint job does this every 15 minutes)."

    def handle(self, *args, **options):
        checkpoint = audit_checkpoint_write(min_interval=timedelta(0))
        if checkpoint is None:
            raise CommandError("No checkpoint written: PIM_AUDIT_SIGNING_KEY is not set for this process.")
        self.stdout.write(
            f"Checkpoint {checkpoint.pk}: #{checkpoint.seq} {checkpoint.hash} "
            f"signed with key {checkpoint.key_id}"
        )
