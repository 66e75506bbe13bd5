"""WhatsApp providers behind one small interface (see base.py).

`get_provider(channel)` returns the provider that sends for a channel. `override_provider(p)`
replaces it for every channel while the block runs (the simulator prints instead of sending;
tests may record). Adding a provider means adding a module and one line in PROVIDERS.
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
from channels_app.providers.cloud_api import CloudApiProvider
from channels_app.providers.sandbox import SandboxProvider
from channels_app.providers.twilio import TwilioProvider

if TYPE_CHECKING:
    from channels_app.models import ChannelInstance

__all__ = [
    "AmbiguousSendError",
    "MediaDownloadError",
    "MediaFile",
    "OutboundPayload",
    "ParsedEcho",
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
    "override_provider",
]

PROVIDERS: dict[str, Provider] = {
    "twilio": TwilioProvider(),
    "cloud_api": CloudApiProvider(),
    "sandbox": SandboxProvider(),
}

_override: list[Provider] = []
_override_lock = threading.Lock()


def get_provider(channel: ChannelInstance) -> Provider:
    """The provider for the channel (or the active override). Raises LookupError when the
    channel names a provider that is not installed."""
    if _override:
        return _override[-1]
    try:
        return PROVIDERS[channel.provider]
    except KeyError:
        raise LookupError(f"No provider named {channel.provider!r}.") from None


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
