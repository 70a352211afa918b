from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_chain_head_restore


class Command(BaseCommand):
    help = (
        "Re-create a missing audit chain head row from the log as it stands, and record that it "
        "was (audit.chain_head_restored). Run audit_verify first: while the head is missing the "
        "portal writes no audit event, and restoring it accepts the log's end as it is."
    )

    def handle(self, *args, **options):
        try:
            event = audit_chain_head_restore()
        except ValueError as error:
            raise CommandError(str(error)) from None
        details = event.details
        self.stdout.write(
            f"Chain head restored at #{details['last_seq']} {details['last_hash']}; "
            f"recorded as event #{event.seq} (audit.chain_head_restored)"
        )
