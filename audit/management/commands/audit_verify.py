from django.core.management.base import BaseCommand, CommandError

from audit.verify import audit_chain_verify


class Command(BaseCommand):
    help = "Walk the audit hash chain; name the first event edited, deleted, reordered or inserted."

    def handle(self, *args, **options):
        result = audit_chain_verify()
        if not result.ok:
            raise CommandError(f"FAILED at {result.problem} ({result.count} events verified before it)")
        self.stdout.write(f"OK: {result.count} events, head #{result.last_seq} {result.last_hash}")
