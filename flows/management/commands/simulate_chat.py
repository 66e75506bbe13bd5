import re
import sys
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from channels_app.models import ChannelInstance
from channels_app.providers import (
    MediaDownloadError,
    MediaFile,
    OutboundPayload,
    ParsedInbound,
    Provider,
    SendResult,
    override_provider,
)
from channels_app.providers.base import numbered_choices
from conversations.models import ChatThread
from conversations.services.inbound import message_receive, thread_process_inbound
from core.crypto import normalize_phone
from core.tasks import in_process

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
PICK = re.compile(r"^/pick\s+(\S+)\s*$")


class PrintingProvider(Provider):
    """A provider that writes each outbound message to the terminal instead of sending it."""

    name = "simulator"

    def __init__(self, write: Any) -> None:
        self._write = write

    def send(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        body = numbered_choices(payload.text, payload.choices)
        if payload.media_url:
            body = f"{body}\n[media: {payload.media_url}]"
        self._write(body)
        return SendResult(provider_message_id=f"SIM{uuid.uuid4().hex}", raw_status="sent")

    def fetch_media(self, *, channel: ChannelInstance, url: str, media_id: str) -> MediaFile:
        raise MediaDownloadError("The simulator has no media.", code="simulator")


class Command(BaseCommand):
    help = (
        "Chat with a channel's flows in the terminal: each line of standard input is a message "
        "from the contact, handled by the same pipeline as the webhook (stored, processed, "
        "replies queued and delivered); replies are printed instead of sent. A line "
        "'/pick CHOICE_ID' sends a button/list reply with that id. Nothing reaches a provider."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument(
            "--channel", required=True, help="channel identifier, e.g. whatsapp:+15550000001"
        )
        parser.add_argument("--phone", default="+15559990001", help="the contact's phone (E.164)")
        parser.add_argument(
            "--name", default="Simulator", help="the contact's WhatsApp profile name"
        )

    def handle(self, *args: object, **options: Any) -> None:
        identifier = str(options["channel"]).strip()
        if not identifier.startswith("whatsapp:"):
            identifier = f"whatsapp:{identifier}"
        channel = (
            ChannelInstance.objects.select_related("tenant").filter(identifier=identifier).first()
        )
        if channel is None:
            raise CommandError(f"No channel with identifier {identifier!r}.")
        if not channel.is_active:
            raise CommandError(f"Channel {identifier!r} is not active.")
        phone = normalize_phone(str(options["phone"]))
        if not E164.match(phone):
            raise CommandError("--phone must be an E.164 number such as +15551234567.")
        if connection.in_atomic_block:
            raise CommandError("simulate_chat must run outside a transaction.")

        def write(text: str) -> None:
            self.stdout.write(f"bot> {text}")

        needs_human = False
        # Tasks run in-process right after each commit, whatever CELERY_BROKER_URL says, so a
        # worker never sends the simulator's replies through a real provider.
        with in_process(), override_provider(PrintingProvider(write)):
            for raw in sys.stdin:
                line = raw.rstrip("\r\n")
                if not line.strip():
                    continue
                pick = PICK.match(line.strip())
                inbound = ParsedInbound(
                    provider_message_id=f"SIM{uuid.uuid4().hex}",
                    from_phone=phone,
                    kind="interactive" if pick else "text",
                    text="" if pick else line,
                    profile_name=str(options["name"]),
                    wa_id=phone.lstrip("+"),
                    interactive_id=pick.group(1) if pick else "",
                    raw_type="simulator",
                    timestamp=timezone.now(),
                )
                message, _ = message_receive(channel=channel, inbound=inbound)
                # Processing already ran on commit; this finds nothing left unless it was
                # deferred (it is idempotent), so the transcript stays in order.
                thread_process_inbound(thread_id=message.thread_id)
                thread = ChatThread.objects.only("needs_human", "handoff_reason").get(
                    pk=message.thread_id
                )
                if thread.needs_human and not needs_human:
                    reason = f": {thread.handoff_reason}" if thread.handoff_reason else ""
                    self.stdout.write(f"-- handed off to a person{reason} (automation paused)")
                needs_human = thread.needs_human
