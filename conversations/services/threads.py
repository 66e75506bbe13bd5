"""Staff and API changes to a thread: its status and whether it waits for a human."""

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from conversations.models import ChatThread, ThreadStatus
from flows.models import FlowSession, SessionStatus

logger = logging.getLogger(__name__)


@transaction.atomic
def thread_update(
    *, thread: ChatThread, status: str | None = None, needs_human: bool | None = None
) -> ChatThread:
    """Change the thread's status and/or handoff flag; returns the updated thread.

    Holds the thread row lock (the same lock inbound processing takes), so a change never
    interleaves with a flow run on that thread. Guarantees:

    - `needs_human=False` resumes automation: the flag and `handoff_reason` are cleared, and the
      next inbound message is handled by the flows again (a new session is selected).
    - `needs_human=True` (a human takes over): automation pauses; a waiting flow session is
      interrupted, so resuming later never continues a stale question.
    - `status` must be one of open, closed, archived (else ValidationError, nothing changed).
      Closing also resumes automation unless `needs_human` says otherwise.

    The given instance is refreshed with the stored values.
    """
    if status is not None and status not in ThreadStatus.values:
        raise ValidationError({"status": f"Must be one of: {', '.join(ThreadStatus.values)}."})
    locked = ChatThread.objects.select_for_update().get(pk=thread.pk)
    changed: list[str] = []
    if status is not None and status != locked.status:
        locked.status = status
        changed.append("status")
        if status == ThreadStatus.CLOSED and needs_human is None:
            # Closing ends a handoff (the flow format: automation stays paused "until an
            # agent resumes it or closes the thread"); the contact's next message starts over.
            needs_human = False
    if needs_human is not None and needs_human != locked.needs_human:
        now = timezone.now()
        locked.needs_human = needs_human
        changed.append("needs_human")
        if needs_human:
            locked.handoff_reason = locked.handoff_reason or "agent"
            FlowSession.objects.filter(thread=locked, status=SessionStatus.WAITING).update(
                status=SessionStatus.INTERRUPTED,
                ended_at=now,
                wait_expires_at=None,
                updated_at=now,
            )
        else:
            locked.handoff_reason = ""
        changed.append("handoff_reason")
    if changed:
        locked.save(update_fields=[*changed, "updated_at"])
        logger.info(
            "thread updated",
            extra={
                "thread_id": str(locked.pk),
                "fields": changed,
                "needs_human": locked.needs_human,
            },
        )
    for field in ("status", "needs_human", "handoff_reason", "updated_at"):
        setattr(thread, field, getattr(locked, field))
    return thread
