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

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db.models import Count, QuerySet

from flows.engine import FlowCandidate, FlowDefinition, FlowValidationError, parse_flow
from flows.models import Flow, FlowEvent, FlowEventKind, FlowSession, SessionStatus

logger = logging.getLogger(__name__)

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


def flow_session_language(*, thread_id: object) -> str:
    """The language of the flow the thread's waiting session runs; "" without a waiting
    session, or when its version can no longer be loaded."""
    session = flow_session_waiting(thread_id=thread_id)
    if session is None:
        return ""
    try:
        return flow_definition_parsed(flow_pk=session.flow_id).language
    except (FlowValidationError, Flow.DoesNotExist):
        logger.error("stored flow version cannot be loaded", extra={"flow": str(session.flow_id)})
        return ""


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


@dataclass
class NodeCounts:
    """What contacts did at one node of a flow version over a period (``waiting``: right now).

    Each number counts sessions (one per contact and run), so a contact who loops back to a
    node is counted there once. ``expired`` are the sessions that dropped out there (their
    session timed out while waiting at the node)."""

    entered: int = 0
    waiting: int = 0
    timed_out: int = 0
    handed_off: int = 0
    expired: int = 0
    completed: int = 0
    failed: int = 0
    interrupted: int = 0


@dataclass
class PathCounts:
    """The counts of `flow_path_counts`: per node, and per exit ``(node_id, exit key)``."""

    nodes: dict[str, NodeCounts]
    exits: dict[tuple[str, str], int]

    def node(self, node_id: str) -> NodeCounts:
        return self.nodes.get(node_id) or NodeCounts()

    def exit(self, node_id: str, key: str) -> int:
        return self.exits.get((node_id, key), 0)


_NODE_FIELDS = {
    FlowEventKind.ENTERED: "entered",
    FlowEventKind.HANDED_OFF: "handed_off",
    FlowEventKind.EXPIRED: "expired",
    FlowEventKind.COMPLETED: "completed",
    FlowEventKind.FAILED: "failed",
    FlowEventKind.INTERRUPTED: "interrupted",
}


def flow_path_counts(*, flow_pk: object, since: datetime, until: datetime) -> PathCounts:
    """The diagram's numbers for one flow version: from the FlowEvents recorded in
    ``[since, until)``, and the sessions waiting at each node now. Two aggregate queries,
    whatever the history's size."""
    nodes: dict[str, NodeCounts] = {}
    exits: dict[tuple[str, str], int] = {}
    rows = (
        FlowEvent.objects.filter(flow_id=flow_pk, created_at__gte=since, created_at__lt=until)
        .values_list("kind", "node_id", "exit")
        .annotate(sessions=Count("session_id", distinct=True))
        .order_by()
    )
    for kind, node_id, exit, sessions in rows:
        counts = nodes.setdefault(node_id, NodeCounts())
        if kind == FlowEventKind.EXITED:
            exits[(node_id, exit)] = sessions
            if exit == "timeout":
                counts.timed_out = sessions
        elif kind in _NODE_FIELDS:
            setattr(counts, _NODE_FIELDS[kind], sessions)
    waiting = (
        FlowSession.objects.filter(flow_id=flow_pk, status=SessionStatus.WAITING)
        .values_list("current_node")
        .annotate(sessions=Count("id"))
        .order_by()
    )
    for node_id, sessions in waiting:
        nodes.setdefault(node_id, NodeCounts()).waiting = sessions
    return PathCounts(nodes=nodes, exits=exits)
