"""The sandbox: a provider for demos and local development that never touches the network.

A send is accepted at once with a made-up id (`SBX…`); `channels_app.sandbox` then moves the
message to delivered and read a couple of seconds apart, through the same status path a real
provider's callbacks take. It has no webhooks, no media and no secrets.

It works only where `sandbox_enabled()` (DEBUG on, or `SANDBOX_PROVIDER_ENABLED=true`): a
production deployment can neither create a sandbox channel nor send through one, so a real
customer's message is never "delivered" into nowhere.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings

from channels_app.providers.base import (
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


def sandbox_enabled() -> bool:
    """Whether sandbox channels may exist and send here: DEBUG, or the explicit setting."""
    return bool(settings.DEBUG or getattr(settings, "SANDBOX_PROVIDER_ENABLED", False))


class SandboxProvider(Provider):
    name = "sandbox"

    def send(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        """Accept the message without sending it anywhere (refused where the sandbox is off)."""
        if not sandbox_enabled():
            raise PermanentSendError(
                "The sandbox provider is disabled on this server "
                "(it needs DEBUG or SANDBOX_PROVIDER_ENABLED).",
                code="sandbox_disabled",
            )
        return SendResult(provider_message_id=f"{ID_PREFIX}{uuid.uuid4().hex}", raw_status="sent")

    def fetch_media(self, *, channel: ChannelInstance, url: str, media_id: str) -> MediaFile:
        raise MediaDownloadError(
            "The sandbox provider has no media to download.", code="sandbox", retryable=False
        )
