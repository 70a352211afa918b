from django.core.management.base import BaseCommand, CommandError

from audit import offline_verify


class Command(BaseCommand):
    help = (
        "Walk the audit hash chain; name the first event edited, deleted, reordered or inserted; "
        "hold the chain against the signed checkpoints. With --export, verify a JSON Lines "
        "export offline instead (no database)."
    )
    # Offline verification must run where there is no database: nothing here needs the checks.
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--export", metavar="FILE", help="verify this JSON Lines export, without the database"
        )
        parser.add_argument(
            "--public-key",
            action="append",
            default=[],
            metavar="KEY",
            help="a trusted audit public key (base64 or PEM) or a file holding it; repeat for rotated keys",
        )

    def handle(self, *args, **options):
        if options["export"]:
            self._verify_export(options["export"], options["public_key"])
        else:
            self._verify_database(options["public_key"])

    def _verify_export(self, path: str, key_values: list[str]):
        if not key_values:
            raise CommandError("--export needs --public-key: an export is proven by the signature alone")
        result = offline_verify.verify_export(path, self._keys(lambda: offline_verify.read_keys(key_values)))
        if not result.ok:
            raise CommandError(str(result))
        self.stdout.write(str(result))

    def _verify_database(self, key_values: list[str]):
        from audit.checkpoints import verification_keys
        from audit.verify import audit_chain_verify

        # The verifier's own keys when given (key text or files), else those configured here.
        keys = self._keys(lambda: offline_verify.read_keys(key_values) if key_values else verification_keys())
        result = audit_chain_verify(keys=keys)
        if not result.ok:
            raise CommandError(f"FAILED at {result.problem} ({result.count} events verified before it)")
        self.stdout.write(f"OK: {result.count} events, head #{result.last_seq} {result.last_hash}")
        if result.checkpoints:
            self.stdout.write(self._checkpoint_summary(result))

    def _keys(self, load):
        try:
            return load()
        except (OSError, ValueError) as error:
            raise CommandError(f"Cannot read the public key: {error}") from None

    def _checkpoint_summary(self, result) -> str:
        latest = result.latest
        text = (
            f"OK: {_count(result.checkpoints, 'checkpoint')} reached by the chain; the latest, "
            f"{latest['id']} of {latest['created_at']:%Y-%m-%d %H:%M:%S} UTC, signs #{latest['seq']}"
        )
        if result.signed is None:
            return text + (
                "; signatures NOT checked: no public key (pass --public-key or set PIM_AUDIT_PUBLIC_KEY)"
            )
        return text + f"; {_count(result.signed, 'signature')} good"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
