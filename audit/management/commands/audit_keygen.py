import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import BaseCommand, CommandError

from audit import signing


class Command(BaseCommand):
    help = (
        "Print a new Ed25519 key pair for signing audit checkpoints (PIM_AUDIT_SIGNING_KEY) and "
        "verifying them (PIM_AUDIT_PUBLIC_KEY, audit_verify --public-key), and a new chain key "
        "(PIM_AUDIT_CHAIN_KEY). With --configured, print the public key of the signing key this "
        "process is configured with instead."
    )
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--configured", action="store_true", help="show the public half of the configured signing key"
        )

    def handle(self, *args, **options):
        if options["configured"]:
            from audit.checkpoints import signing_key

            try:
                private = signing_key()
            except ValueError as error:
                raise CommandError(f"PIM_AUDIT_SIGNING_KEY cannot be read: {error}") from None
            if private is None:
                raise CommandError("No signing key is configured (PIM_AUDIT_SIGNING_KEY).")
            self._public(private.public_key())
            return
        private = Ed25519PrivateKey.generate()
        self.stdout.write("# Secret: give it only to the Celery worker and beat that write checkpoints.")
        self.stdout.write(f"PIM_AUDIT_SIGNING_KEY={signing.private_key_text(private)}")
        self._public(private.public_key())
        self.stdout.write(
            "# Secret: for every process that writes audit events (web, worker, beat, cron), "
            "never in the database."
        )
        self.stdout.write(f"PIM_AUDIT_CHAIN_KEY={secrets.token_urlsafe(32)}")

    def _public(self, public):
        self.stdout.write(f"# Public (key id {signing.key_id(public)}): for audit_verify and auditors.")
        self.stdout.write(f"PIM_AUDIT_PUBLIC_KEY={signing.public_key_text(public)}")
        self.stdout.write(signing.public_key_pem(public).rstrip())
