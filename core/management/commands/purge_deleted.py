"""`manage.py purge_deleted`: hard-delete soft-deleted rows past retention."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.purge import purge_deleted

MAX_DAYS = 36_500  # a century: beyond it the cutoff date does not exist


def _non_negative_int(value: str) -> int:
    message = f"--older-than-days must be an integer from 0 to {MAX_DAYS}."
    try:
        number = int(value)
    except ValueError as exc:
        raise CommandError(message) from exc
    if not 0 <= number <= MAX_DAYS:
        raise CommandError(message)
    return number


class Command(BaseCommand):
    help = (
        "Hard-delete rows soft-deleted more than N days ago, with what cascades from them and "
        "their stored files. Flow versions still referenced by flow sessions are kept (and "
        "counted as skipped) until their sessions are gone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than-days",
            required=True,
            metavar="N",
            help="Retention in days (an integer >= 0; 0 purges every soft-deleted row).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = _non_negative_int(str(options["older_than_days"]))
        counts = purge_deleted(older_than_days=days)
        deleted = {k: v for k, v in counts.items() if not k.startswith("skipped:") and k != "files"}
        skipped = {
            k.removeprefix("skipped:"): v for k, v in counts.items() if k.startswith("skipped:")
        }
        if not deleted and not skipped:
            self.stdout.write(f"Nothing soft-deleted more than {days} days ago.")
            return
        for label, count in sorted(deleted.items()):
            self.stdout.write(f"deleted {label}: {count}")
        self.stdout.write(f"deleted stored files: {counts['files']}")
        for label, count in sorted(skipped.items()):
            self.stdout.write(f"kept {label}: {count} (still referenced)")
