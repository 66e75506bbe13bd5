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
