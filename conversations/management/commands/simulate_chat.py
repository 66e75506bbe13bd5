import logging
import os
import re
import select
import sys
import uuid
from collections.abc import Callable, Iterator
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
from channels_app.providers.base import MEDIA_KINDS, ParsedMedia, numbered_choices
from channels_app.providers.sandbox import placeholder_png
from conversations.models import ChatThread, Contact, Direction, Message, Sender
from conversations.services.inbound import message_receive
from conversations.services.process import thread_process_inbound
from core.crypto import normalize_phone, phone_lookup
from core.tasks import in_process

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
PICK = re.compile(r"^/pick\s+(\S+)\s*$")
IMAGE = re.compile(r"^/image(?:\s+(.*))?$")
PROMPT = "you> "
# How often a terminal session looks for replies sent from elsewhere while waiting for a line.
POLL_SECONDS = 1.0


class PrintingProvider(Provider):
    """A provider that writes each outbound message to the terminal instead of sending it."""

    name = "simulator"

    def __init__(self, write: Any, *, printed: set[str] | None = None) -> None:
        self._write = write
        self.printed = printed if printed is not None else set()

    def send(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        body = numbered_choices(payload.text, payload.choices)
        if payload.media_url:
            body = f"{body}\n[media: {payload.media_url}]"
        self._write(body)
        self.printed.add(payload.reference)
        return SendResult(provider_message_id=f"SIM{uuid.uuid4().hex}", raw_status="sent")

    def send_template(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        """A template prints as its rendered text, marked with the template's name."""
        template = payload.template
        label = (template.name or template.content_sid) if template is not None else ""
        self._write(f"[template {label}] {payload.text}")
        self.printed.add(payload.reference)
        return SendResult(provider_message_id=f"SIM{uuid.uuid4().hex}", raw_status="sent")

    def fetch_media(self, *, channel: ChannelInstance, url: str, media_id: str) -> MediaFile:
        if media_id.startswith("simulator-"):  # a /image of this session
            return MediaFile(content=placeholder_png(), content_type="image/png")
        raise MediaDownloadError("The simulator has no media.", code="simulator")


def _lines(stdin: Any, *, idle: Callable[[], None]) -> Iterator[str]:
    """The lines of `stdin`. At a terminal (POSIX) `idle` runs about every POLL_SECONDS while
    no line comes, so replies sent from elsewhere show up without pressing Enter."""
    try:
        interactive = stdin.isatty() and os.name == "posix"
    except (AttributeError, ValueError):
        interactive = False
    if not interactive:
        yield from stdin
        return
    while True:
        ready, _, _ = select.select([stdin], [], [], POLL_SECONDS)
        if not ready:
            idle()
            continue
        line = stdin.readline()
        if not line:
            return
        yield line


class Command(BaseCommand):
    help = (
        "Chat with a channel's flows in the terminal: each line of standard input is a message "
        "from the contact, handled by the same pipeline as the webhook (stored, processed, "
        "replies queued and delivered); replies are printed instead of sent. A line "
        "'/pick CHOICE_ID' sends a button/list reply with that id, '/image [caption]' a photo. "
        "Messages staff send from the inbox, and replies of timeouts fired by the server, are "
        "shown too. Nothing reaches a provider. Log lines are silenced unless -v 2."
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

        printed: set[str] = set()

        def write(text: str) -> None:
            self.stdout.write(f"bot> {text}")

        thread_id = self._existing_thread_id(channel, phone)
        since = timezone.now()
        interactive = _isatty(sys.stdin)

        def show_new() -> None:
            """Print this conversation's replies that were not sent here (staff's answers from
            the inbox, flow timeouts fired by the server), oldest first."""
            nonlocal since
            if thread_id is None:
                return
            fresh = list(
                Message.objects.filter(
                    thread_id=thread_id, direction=Direction.OUTBOUND, created_at__gte=since
                )
                .order_by("created_at", "id")
                .only("pk", "sender", "text", "kind", "metadata", "created_at")
            )
            for message in fresh:
                if str(message.pk) in printed:
                    continue
                printed.add(str(message.pk))
                who = "agent" if message.sender == Sender.AGENT else "bot"
                body = message.text or ""
                if (message.metadata or {}).get("media_url") or message.kind in MEDIA_KINDS:
                    body = f"{body}\n[media: {message.kind}]".strip()
                self.stdout.write(f"{who}> {body}")
            if fresh:
                since = fresh[-1].created_at

        def prompt() -> None:
            show_new()
            if interactive:
                self.stdout.write(PROMPT, ending="")
                self.stdout.flush()

        def idle() -> None:
            before = len(printed)
            show_new()
            if interactive and len(printed) != before:
                self.stdout.write(PROMPT, ending="")
                self.stdout.flush()

        self.stdout.write(
            f"Chatting with {channel.identifier} as {phone}. Type a message and press Enter; "
            "'/pick ID' answers a button, '/image [caption]' sends a photo, Ctrl-D ends.\n"
            "Replies from staff in the inbox show up here as 'agent>'."
        )
        needs_human = False
        quiet = int(options.get("verbosity", 1)) < 2
        if quiet:
            logging.disable(logging.INFO)  # the conversation only; warnings still go to stderr
        try:
            # Tasks run in-process right after each commit, whatever CELERY_BROKER_URL says, so
            # a worker never sends the simulator's replies through a real provider.
            with in_process(), override_provider(PrintingProvider(write, printed=printed)):
                prompt()
                for raw in _lines(sys.stdin, idle=idle):
                    line = raw.rstrip("\r\n")
                    if not line.strip():
                        prompt()
                        continue
                    if not interactive:
                        self.stdout.write(f"{PROMPT}{line}")
                    message = self._receive(channel, phone, str(options["name"]), line)
                    thread_id = message.thread_id
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
                    prompt()
        finally:
            if quiet:
                logging.disable(logging.NOTSET)
        if interactive:
            self.stdout.write("")

    @staticmethod
    def _existing_thread_id(channel: ChannelInstance, phone: str) -> Any:
        contact = Contact.objects.filter(
            tenant_id=channel.tenant_id, phone_lookup=phone_lookup(phone)
        ).first()
        if contact is None:
            return None
        return (
            ChatThread.objects.filter(contact=contact, channel=channel)
            .order_by("-created_at")
            .values_list("pk", flat=True)
            .first()
        )

    @staticmethod
    def _receive(channel: ChannelInstance, phone: str, name: str, line: str) -> Message:
        pick = PICK.match(line.strip())
        image = IMAGE.match(line.strip())
        kind, text, media = "text", line, ()
        if pick:
            kind, text = "interactive", ""
        elif image:
            kind, text = "image", (image.group(1) or "").strip()
            media = (
                ParsedMedia(
                    media_type="image",
                    content_type="image/png",
                    provider_media_id=f"simulator-{uuid.uuid4().hex}",
                ),
            )
        inbound = ParsedInbound(
            provider_message_id=f"SIM{uuid.uuid4().hex}",
            from_phone=phone,
            kind=kind,
            text=text,
            profile_name=name,
            wa_id=phone.lstrip("+"),
            interactive_id=pick.group(1) if pick else "",
            media=media,
            raw_type="simulator",
            timestamp=timezone.now(),
        )
        message, _ = message_receive(channel=channel, inbound=inbound)
        return message


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
