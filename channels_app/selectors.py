"""Channel lookups for the webhooks' hot path, memoised per process.

Every webhook request starts by finding its channel (`channels_by_key`: Twilio by `To`, the
Cloud API by `phone_number_id`, each provider by its own key). Channels change rarely, so each
process keeps the channels it has looked up, valid while the shared stamp in the default cache
is unchanged. Every write to a channel or a tenant replaces the stamp (`channels_invalidate`,
right away and again after commit). The process that made the change forgets its memo at once;
the others read the stamp at most every `STAMP_CHECK_SECONDS` (one cache round trip per second
instead of one per webhook), so they see a committed change within that time. Entries also
expire after `MEMO_SECONDS`, which bounds staleness where the cache is not shared between
processes (the embedded default without Redis).

The memoised instances are shared between requests of a process: read them, never change them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable

from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet

from channels_app.models import ChannelInstance, Provider

MEMO_SECONDS = 60.0
MEMO_SIZE = 1024
STAMP_CHECK_SECONDS = 1.0
_STAMP_KEY = "channels:stamp"


class _Memo:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: str | None = None
        self._stamp_checked_at = float("-inf")
        self._entries: OrderedDict[tuple[str, str], tuple[float, ChannelInstance | None]] = (
            OrderedDict()
        )

    def stamp_due(self) -> bool:
        return time.monotonic() - self._stamp_checked_at >= STAMP_CHECK_SECONDS

    def sync(self, stamp: str) -> None:
        with self._lock:
            self._stamp_checked_at = time.monotonic()
            if stamp != self._stamp:
                self._entries.clear()
                self._stamp = stamp

    def get(self, key: tuple[str, str]) -> tuple[bool, ChannelInstance | None]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < time.monotonic():
                return False, None
            self._entries.move_to_end(key)
            return True, entry[1]

    def put(self, key: tuple[str, str], channel: ChannelInstance | None) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + MEMO_SECONDS, channel)
            self._entries.move_to_end(key)
            while len(self._entries) > MEMO_SIZE:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._stamp = None
            self._stamp_checked_at = float("-inf")


_memo = _Memo()


def _current_stamp() -> str:
    stamp = cache.get(_STAMP_KEY)
    if stamp is None:
        cache.add(_STAMP_KEY, uuid.uuid4().hex, timeout=None)
        stamp = cache.get(_STAMP_KEY) or uuid.uuid4().hex
    return str(stamp)


def channels_memo_clear() -> None:
    """Forget this process's memoised channels (and read the stamp on the next lookup)."""
    _memo.clear()


def channels_invalidate() -> None:
    """Make every process forget its memoised channels: now, and once the change commits."""
    _memo.clear()
    cache.set(_STAMP_KEY, uuid.uuid4().hex, timeout=None)
    transaction.on_commit(lambda: cache.set(_STAMP_KEY, uuid.uuid4().hex, timeout=None))


def _sync_memo() -> None:
    if _memo.stamp_due():
        _memo.sync(_current_stamp())


def _live_channels() -> QuerySet[ChannelInstance]:
    """Live channels of live tenants (a soft-deleted tenant's numbers are unknown numbers)."""
    return ChannelInstance.objects.select_related("tenant").filter(tenant__deleted_at__isnull=True)


def channels_by_key(
    *, provider: str, keys: Iterable[str], field: str = "identifier"
) -> dict[str, ChannelInstance]:
    """The live channels (active or not) of `provider` whose `field` (a column: `identifier`,
    `phone_number_id`) is one of `keys`, by key. One query for the keys not memoised."""
    _sync_memo()
    found: dict[str, ChannelInstance] = {}
    missing: list[str] = []
    for key in sorted(set(keys)):
        known, channel = _memo.get((provider, key))
        if not known:
            missing.append(key)
        elif channel is not None:
            found[key] = channel
    if missing:
        fetched = {
            str(getattr(channel, field)): channel
            for channel in _live_channels().filter(provider=provider, **{f"{field}__in": missing})
        }
        for key in missing:
            channel = fetched.get(key)
            _memo.put((provider, key), channel)
            if channel is not None:
                found[key] = channel
    return found


def channel_for_twilio(*, identifier: str) -> ChannelInstance | None:
    """The live Twilio channel with this identifier (`whatsapp:+1...`), active or not."""
    return channels_by_key(provider=Provider.TWILIO, keys=[identifier]).get(identifier)


def channels_for_cloud_api(*, phone_number_ids: Iterable[str]) -> dict[str, ChannelInstance]:
    """The live Cloud API channels (active or not) by `phone_number_id`, for the given ids."""
    return channels_by_key(
        provider=Provider.CLOUD_API, keys=phone_number_ids, field="phone_number_id"
    )
