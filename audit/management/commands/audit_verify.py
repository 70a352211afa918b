from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit import offline_verify


class Command(BaseCommand):
    help = (
        "Walk the audit hash chain; name the first event edited, deleted, reordered, inserted or "
        "forged; check the event and head MACs (with the chain key); hold the chain against the "
        "signed checkpoints and the checkpoint file. With --export, verify a JSON Lines export "
        "offline instead (no database)."
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
        parser.add_argument(
            "--checkpoint-file",
            metavar="FILE",
            help=(
                "hold the database against the signed checkpoints in this file (a checkpoint file, "
                "or an earlier JSON Lines export); default: PIM_AUDIT_CHECKPOINT_FILE"
            ),
        )

        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            metavar="N",
            help="processes that walk the log in segments (default: one per core; 1 for one)",
        )

    def handle(self, *args, **options):
        if options["export"]:
            self._verify_export(options["export"], options["public_key"])
        else:
            self._verify_database(options["public_key"], options["checkpoint_file"], options["workers"])

    def _verify_export(self, path: str, key_values: list[str]):
        if not key_values:
            raise CommandError("--export needs --public-key: an export is proven by the signature alone")
        result = offline_verify.verify_export(path, self._keys(lambda: offline_verify.read_keys(key_values)))
        if not result.ok:
            raise CommandError(str(result))
        self.stdout.write(str(result))

    def _verify_database(
        self, key_values: list[str], checkpoint_file: str | None, workers: int | None = None
    ):
        from audit.checkpoints import verification_keys
        from audit.verify import audit_chain_verify

        # The verifier's own keys when given (key text or files), else those configured here.
        keys = self._keys(lambda: offline_verify.read_keys(key_values) if key_values else verification_keys())
        path, reference = self._reference(checkpoint_file)
        result = audit_chain_verify(keys=keys, reference=reference, workers=workers)
        if not result.ok:
            raise CommandError(f"FAILED at {result.problem} ({result.count} events verified before it)")
        self.stdout.write(f"OK: {result.count} events, head #{result.last_seq} {result.last_hash}")
        if result.count:
            self.stdout.write(self._mac_summary(result))
        if result.checkpoints:
            self.stdout.write(self._checkpoint_summary(result))
        if path:
            self.stdout.write(
                f"OK: {path} holds {_count(result.referenced, 'checkpoint')}, all in the database "
                "as written and reached by the chain"
            )

    def _reference(self, given: str | None) -> tuple[str | None, list[dict]]:
        """The checkpoints kept outside the database: from the file given, else from
        PIM_AUDIT_CHECKPOINT_FILE once the checkpoint job has written it."""
        path = given or settings.PIM_AUDIT_CHECKPOINT_FILE
        if not path or (not given and not Path(path).exists()):
            return None, []
        try:
            return path, offline_verify.read_checkpoints(path)
        except (OSError, ValueError) as error:
            raise CommandError(f"Cannot read the checkpoint file {path}: {error}") from None

    def _mac_summary(self, result) -> str:
        if result.keyed is None:
            return "event MACs and the chain head's MAC NOT checked: no chain key (PIM_AUDIT_CHAIN_KEY)"
        if result.keyed_from is None:
            return (
                "OK: no event is keyed yet (all were written before the keyed chain): checked by hash alone"
            )
        text = f"OK: {_count(result.keyed, 'event MAC')} good, every event from #{result.keyed_from} on"
        if result.keyed_from > 1:
            text += f" (the {_count(result.keyed_from - 1, 'event')} before the keyed chain: by hash alone)"
        return text + "; the chain head's MAC good"

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
