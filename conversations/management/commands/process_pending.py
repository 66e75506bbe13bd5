"""`manage.py process_pending`: finish inbound processing and sends that never finished."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.services.pending import DEFAULT_GRACE, DEFAULT_LIMIT, pending_process

MAX_GRACE_SECONDS = 366 * 24 * 3600  # a year; beyond it the cutoff date may not exist


class Command(BaseCommand):
    help = (
        "Pick up inbound messages whose processing never finished and outbound messages stuck "
        "in 'queued' (older than the grace period) and finish them exactly once. Also runs "
        "every minute as the periodic task conversations.tasks.process_pending."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace-seconds",
            type=int,
            default=int(DEFAULT_GRACE.total_seconds()),
            help="Leave work younger than this to the tasks that are probably running it.",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=DEFAULT_LIMIT,
            help="At most this many threads and this many outbound messages per run.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 <= options["grace_seconds"] <= MAX_GRACE_SECONDS:
            raise CommandError(f"--grace-seconds must be from 0 to {MAX_GRACE_SECONDS}.")
        if options["limit"] < 1:
            raise CommandError("--limit must be >= 1.")
        report = pending_process(
            grace=timedelta(seconds=options["grace_seconds"]), limit=options["limit"]
        )
        for name, count in report.as_dict().items():
            self.stdout.write(f"{name}: {count}")
