"""Reads for flows and flow sessions.

The hot path (`flow_handle_inbound`) reads through two helpers here with a fixed cost:

- `flow_candidates_active(channel_id=...)`: the trigger fields of a channel's active flows,
  cached in the default cache under a per-channel version stamp. `flow_candidates_invalidate`
  (called on commit by every write that changes which flows are active) replaces the stamp, so
  a reader never sees a list older than the last committed change, even when a slow reader
  stores a stale list under the old stamp.
- `flow_definition_parsed(flow_pk=..., definition=...)`: the engine's parsed definition of a
  stored flow version, memoised per process. A stored version's definition never changes (a
  change is a new version), so the memo needs no invalidation.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import QuerySet

from flows.engine import FlowCandidate, FlowDefinition, parse_flow
from flows.models import Flow, FlowSession, SessionStatus

CANDIDATES_CACHE_SECONDS = 300
_PARSED_MEMO_SIZE = 256


@dataclass(frozen=True)
class ActiveFlow:
    """An active flow version of a channel, as flow selection needs it (no definition)."""

    pk: str
    flow_id: str
    version: int
    trigger_keywords: tuple[str, ...]
    trigger_match: str
    is_default: bool
    weight: int
    ignore_keywords: bool

    def as_candidate(self) -> FlowCandidate:
        """The engine's view; `key` is the flow_id, so A/B buckets survive a new version."""
        return FlowCandidate(
            key=self.flow_id,
            keywords=self.trigger_keywords,
            match=self.trigger_match,
            is_default=self.is_default,
            weight=self.weight,
        )


def _stamp_key(channel_id: object) -> str:
    return f"flows:active-stamp:{channel_id}"


def _candidates_key(channel_id: object, stamp: str) -> str:
    return f"flows:active:{channel_id}:{stamp}"


def _current_stamp(channel_id: object) -> str:
    stamp = cache.get(_stamp_key(channel_id))
    if stamp is None:
        # A fresh random stamp (never 0): a stamp key evicted from the cache must not bring
        # back a list stored under an older stamp.
        cache.add(_stamp_key(channel_id), uuid.uuid4().hex, timeout=None)
        stamp = cache.get(_stamp_key(channel_id)) or uuid.uuid4().hex
    return str(stamp)


def flow_candidates_invalidate(*, channel_id: object) -> None:
    """Forget the cached active flows of a channel. Call after the change has committed."""
    cache.set(_stamp_key(channel_id), uuid.uuid4().hex, timeout=None)


def flow_candidates_active(*, channel_id: object) -> list[ActiveFlow]:
    """The channel's active, live flow versions (one per flow_id). At most one query."""
    stamp = _current_stamp(channel_id)
    key = _candidates_key(channel_id, stamp)
    cached = cache.get(key)
    if cached is not None:
        return [ActiveFlow(**row) for row in cached]
    rows = list(
        Flow.objects.filter(channel_id=channel_id, is_active=True)
        .order_by("flow_id")
        .values(
            "pk",
            "flow_id",
            "version",
            "trigger_keywords",
            "trigger_match",
            "is_default",
            "weight",
            "ignore_keywords",
        )
    )
    plain: list[dict[str, Any]] = [
        {**row, "pk": str(row["pk"]), "trigger_keywords": tuple(row["trigger_keywords"] or ())}
        for row in rows
    ]
    cache.set(key, plain, timeout=CANDIDATES_CACHE_SECONDS)
    return [ActiveFlow(**row) for row in plain]


class _ParsedMemo:
    """A small thread-safe LRU of parsed definitions keyed by flow version pk."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, FlowDefinition] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> FlowDefinition | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: str, value: FlowDefinition) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_parsed = _ParsedMemo(_PARSED_MEMO_SIZE)


def flow_definition_parsed(*, flow_pk: object, definition: dict | None = None) -> FlowDefinition:
    """The parsed definition of a stored flow version.

    Reads the definition from the database (one query) only when it is neither memoised nor
    given. Raises `FlowValidationError` when the stored document no longer validates (an engine
    upgrade that tightened a rule); callers treat that as a failed session.
    """
    key = str(flow_pk)
    found = _parsed.get(key)
    if found is not None:
        return found
    if definition is None:
        definition = Flow.all_objects.values_list("definition", flat=True).get(pk=flow_pk)
    parsed = parse_flow(definition)
    _parsed.put(key, parsed)
    return parsed


def flow_session_waiting(*, thread_id: object) -> FlowSession | None:
    """The thread's waiting session with its flow version (definition deferred). One query."""
    return (
        FlowSession.objects.select_related("flow")
        .defer("flow__definition")
        .filter(thread_id=thread_id, status=SessionStatus.WAITING)
        .first()
    )


def flow_sessions_due_timeouts(*, now: datetime, limit: int = 500) -> list[tuple[Any, Any, int]]:
    """(session pk, thread pk, wait_seq) of waiting sessions whose node timeout is due."""
    return list(
        FlowSession.objects.filter(status=SessionStatus.WAITING, wait_expires_at__lte=now)
        .order_by("wait_expires_at")
        .values_list("pk", "thread_id", "wait_seq")[:limit]
    )


def flow_sessions_stale(*, now: datetime, limit: int = 500) -> list[tuple[Any, Any, int]]:
    """(session pk, thread pk, wait_seq) of waiting sessions past their session timeout."""
    return list(
        FlowSession.objects.filter(status=SessionStatus.WAITING, stale_at__lte=now)
        .order_by("stale_at")
        .values_list("pk", "thread_id", "wait_seq")[:limit]
    )


def flow_versions(*, channel_id: object, flow_id: str) -> QuerySet[Flow]:
    """Every live version of a flow on a channel, newest first."""
    return Flow.objects.filter(channel_id=channel_id, flow_id=flow_id).order_by("-version")


def flow_list(*, tenant: Any, channel_id: object = None) -> QuerySet[Flow]:
    """The tenant's live flow versions (optionally of one channel), with their channel."""
    queryset = Flow.objects.filter(tenant=tenant).select_related("channel")
    if channel_id is not None:
        queryset = queryset.filter(channel_id=channel_id)
    return queryset.order_by("flow_id", "-version")
