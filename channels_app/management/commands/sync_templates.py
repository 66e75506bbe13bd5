"""`manage.py sync_templates`: message templates from the providers, now."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels_app.models import ChannelInstance
from channels_app.templates import TemplateSyncError, channel_templates_sync, templates_sync_all
from core.api_base import parse_uuid


class Command(BaseCommand):
    help = (
        "Sync the message templates of one channel (--channel) or of every active channel "
        "whose provider has templates, from the provider. Also runs every "
        "TEMPLATES_SYNC_SECONDS as the periodic task channels_app.tasks.sync_templates."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--channel", help="The id of one channel.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["channel"] is None:
            counts = templates_sync_all()
            self.stdout.write(
                f"{counts['synced']} channel(s) synced, {counts['failed']} failed, "
                f"{counts['skipped']} not set up for templates (e.g. no business_account_id)."
            )
            if counts["failed"]:
                raise CommandError(f"{counts['failed']} channel(s) could not be synced.")
            return
        pk = parse_uuid(options["channel"])
        channel = ChannelInstance.objects.filter(pk=pk).first() if pk else None
        if channel is None:
            raise CommandError("No such channel.")
        try:
            report = channel_templates_sync(channel=channel)
        except TemplateSyncError as exc:
            raise CommandError(f"The provider refused ({exc.code}): {exc}") from None
        self.stdout.write(
            f"{report.created} new, {report.updated} updated, {report.gone} no longer listed."
        )
