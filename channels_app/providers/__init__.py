"""WhatsApp providers behind one small interface (see base.py).

`get_provider(channel)` returns the provider that sends for a channel. `override_provider(p)`
replaces it for every channel while the block runs (the simulator prints instead of sending;
tests may record). The providers themselves come from `settings.CHANNEL_PROVIDERS`
(`registry.py`): adding a provider means adding a module and one line in that setting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from channels_app.providers.base import (
    AmbiguousSendError,
    MediaDownloadError,
    MediaFile,
    OutboundPayload,
    ParsedEcho,
    ParsedEdit,
    ParsedInbound,
    ParsedLocation,
    ParsedMedia,
    ParsedStatus,
    ParsedUserIdChange,
    PermanentSendError,
    Provider,
    ProviderError,
    SendResult,
    TransientSendError,
)
from channels_app.providers.registry import provider_for_code, providers

if TYPE_CHECKING:
    from channels_app.models import ChannelInstance

__all__ = [
    "AmbiguousSendError",
    "MediaDownloadError",
    "MediaFile",
    "OutboundPayload",
    "ParsedEcho",
    "ParsedEdit",
    "ParsedInbound",
    "ParsedLocation",
    "ParsedMedia",
    "ParsedStatus",
    "ParsedUserIdChange",
    "PermanentSendError",
    "Provider",
    "ProviderError",
    "SendResult",
    "TransientSendError",
    "get_provider",
    "sending_provider",
    "override_provider",
    "providers",
]

_override: list[Provider] = []
_override_lock = threading.Lock()


def get_provider(channel: ChannelInstance) -> Provider:
    """The provider for the channel (or the active override). Raises LookupError when the
    channel names a provider that is not installed."""
    if _override:
        return _override[-1]
    return provider_for_code(channel.provider)


class NotInstalledProvider(Provider):
    """What sends for a channel whose provider is no longer installed: every send is a
    permanent failure `provider_not_installed` (recorded on the message), never a
    LookupError in the sender."""

    code = "not_installed"

    def send(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        raise PermanentSendError(
            "The channel's provider is not installed on this server.",
            code="provider_not_installed",
        )

    def send_template(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        return self.send(channel=channel, payload=payload)

    def fetch_media(self, *, channel: ChannelInstance, url: str, media_id: str) -> MediaFile:
        raise MediaDownloadError(
            "The channel's provider is not installed on this server.",
            code="provider_not_installed",
            retryable=False,
        )


def sending_provider(channel: ChannelInstance) -> Provider:
    """`get_provider`, or a NotInstalledProvider for a provider that is not installed."""
    try:
        return get_provider(channel)
    except LookupError:
        return NotInstalledProvider()


@contextmanager
def override_provider(provider: Provider) -> Iterator[Provider]:
    """Use `provider` for every channel while the block runs (process-wide, nestable)."""
    with _override_lock:
        _override.append(provider)
    try:
        yield provider
    finally:
        with _override_lock:
            _override.remove(provider)
