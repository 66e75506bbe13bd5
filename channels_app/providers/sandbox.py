"""The sandbox: a provider for demos and local development that never touches the network.

A send is accepted at once with a made-up id (`SBX…`); `conversations.services.sandbox` then
moves the message to delivered and read a couple of seconds apart, through the same status path
a real provider's callbacks take. It has no webhooks and no secrets; inbound media (from
`seed_demo`) is a generated placeholder picture.

It works only where `sandbox_enabled()` (DEBUG on, or `SANDBOX_PROVIDER_ENABLED=true`): a
production deployment can neither create a sandbox channel nor send through one, so a real
customer's message is never "delivered" into nowhere.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from typing import TYPE_CHECKING

from django.conf import settings

from channels_app.providers.base import (
    FetchedTemplate,
    MediaDownloadError,
    MediaFile,
    OutboundPayload,
    PermanentSendError,
    Provider,
    SendResult,
)

if TYPE_CHECKING:
    from channels_app.models import ChannelInstance

ID_PREFIX = "SBX"


DEMO_TEMPLATES = (
    FetchedTemplate(
        name="follow_up",
        language="en",
        category="UTILITY",
        status="approved",
        body="Hi {{1}}, we have an answer to your question. Reply to this message to continue.",
        components=[
            {
                "type": "BODY",
                "text": "Hi {{1}}, we have an answer to your question. "
                "Reply to this message to continue.",
            }
        ],
        parameters=({"component": "body", "name": "1"},),
    ),
    FetchedTemplate(
        name="class_reminder",
        language="en",
        category="UTILITY",
        status="approved",
        body="Your {{1}} class starts at {{2}}. See you there!",
        components=[{"type": "BODY", "text": "Your {{1}} class starts at {{2}}. See you there!"}],
        parameters=({"component": "body", "name": "1"}, {"component": "body", "name": "2"}),
    ),
)


def sandbox_enabled() -> bool:
    """Whether sandbox channels may exist and send here: DEBUG, or the explicit setting."""
    return bool(settings.DEBUG or getattr(settings, "SANDBOX_PROVIDER_ENABLED", False))


class SandboxProvider(Provider):
    code = "sandbox"
    name = "Sandbox (demo: nothing is sent)"
    short_name = "Sandbox"
    # nothing to connect: no secrets, no settings, no webhooks

    def available(self) -> bool:
        return sandbox_enabled()

    def unavailable_reason(self) -> str:
        return "The sandbox provider is for demos: it needs DEBUG or SANDBOX_PROVIDER_ENABLED."

    def send(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        """Accept the message without sending it anywhere (refused where the sandbox is off)."""
        if not sandbox_enabled():
            raise PermanentSendError(
                "The sandbox provider is disabled on this server "
                "(it needs DEBUG or SANDBOX_PROVIDER_ENABLED).",
                code="sandbox_disabled",
            )
        return SendResult(provider_message_id=f"{ID_PREFIX}{uuid.uuid4().hex}", raw_status="sent")

    # Templates: a demo's two approved templates; a template send is accepted like any send.
    supports_templates = True

    def templates_fetch(self, *, channel: ChannelInstance) -> list[FetchedTemplate]:
        return list(DEMO_TEMPLATES)

    def send_template(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        return self.send(channel=channel, payload=payload)

    def fetch_media(self, *, channel: ChannelInstance, url: str, media_id: str) -> MediaFile:
        """Any media a sandbox contact "sends" is the same generated picture (a demo's photo)."""
        if not sandbox_enabled():
            raise MediaDownloadError(
                "The sandbox provider is disabled on this server.",
                code="sandbox_disabled",
                retryable=False,
            )
        return MediaFile(content=placeholder_png(), content_type="image/png")


def placeholder_png(width: int = 96, height: int = 64) -> bytes:
    """A small PNG (a diagonal gradient), made here: no image library, no file shipped."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00"  # filter type: none
        + b"".join(
            bytes((40 + 150 * x // width, 110 + 100 * y // height, 170)) for x in range(width)
        )
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
