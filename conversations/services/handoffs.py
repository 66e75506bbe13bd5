"""When conversations wait for a human, and how soon a human answers (`Handoff` rows).

A handoff starts when a thread starts waiting for a human (a flow's handoff node, a staff
takeover), gets its `first_reply_at` with the first agent message after that, and ends when
automation resumes or the thread is no longer open. The dashboard and the stats API read them.

Each function is idempotent and costs at most one query or two. Callers hold the thread's row
lock (`process.thread_lock`): the pipeline and `threads.thread_update` do already.
`handoff_first_reply` needs no lock: its single conditional UPDATE sets the time once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from conversations.models import ChatThread, Handoff, HandoffSource


def handoff_start(
    *, thread: ChatThread, source: HandoffSource, now: datetime, flow_id: Any = None
) -> Handoff | None:
    """Open a handoff for `thread` unless one is open already (then None: the wait that is
    already running keeps its start). Requires the thread row lock."""
    if Handoff.objects.filter(thread_id=thread.pk, ended_at__isnull=True).exists():
        return None
    return Handoff.objects.create(
        tenant_id=thread.tenant_id,
        thread_id=thread.pk,
        source=source,
        flow_id=flow_id,
        started_at=now,
    )


def handoff_first_reply(*, thread_id: Any, now: datetime) -> bool:
    """Record a human's reply: the thread's open handoff gets `first_reply_at` = `now` unless
    it has one. True when this reply was the first. One UPDATE, safe without a lock."""
    return bool(
        Handoff.objects.filter(
            thread_id=thread_id, ended_at__isnull=True, first_reply_at__isnull=True
        ).update(first_reply_at=now, updated_at=now)
    )


def handoff_end(*, thread_ids: list[Any], now: datetime) -> int:
    """End the open handoffs of these threads (automation resumed, thread closed or erased);
    returns how many ended."""
    return Handoff.objects.filter(thread_id__in=thread_ids, ended_at__isnull=True).update(
        ended_at=now, updated_at=now
    )
