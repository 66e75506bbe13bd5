"""`manage.py rotate_pii_keys`: re-encrypt every PII value with the first key."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.rotation import DEFAULT_BATCH_SIZE, RotationStats, rotate_all


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted value with the first key of PII_ENCRYPTION_KEYS, in "
        "batches (one transaction each), skipping values already under that key. Resumable: "
        "run it again after an interruption. Afterwards the old keys can be removed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows per transaction (default {DEFAULT_BATCH_SIZE}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be a positive integer.")

        def progress(stats: RotationStats) -> None:
            self.stdout.write(
                f"{stats.label}: {stats.rows_scanned} rows scanned, "
                f"{stats.values_rotated} values re-encrypted"
            )

        results = rotate_all(batch_size=batch_size, on_progress=progress)
        rotated = sum(stats.values_rotated for stats in results)
        failed = sum(stats.values_failed for stats in results)
        scanned = sum(stats.rows_scanned for stats in results)
        self.stdout.write(
            f"Done: {scanned} rows in {len(results)} models scanned, {rotated} values "
            "re-encrypted with the first key."
        )
        if failed:
            raise CommandError(
                f"{failed} values could not be decrypted with any configured key and were left "
                "as they are (see the log for model, field and id). Do not remove old keys yet."
            )
