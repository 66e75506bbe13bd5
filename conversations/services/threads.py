"""Staff and API changes to a thread: its status, whether it waits for a human, who answers
it, when it was last read, and the private notes staff leave on it."""

import logging
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from conversations.models import ChatThread, HandoffSource, ThreadNote, ThreadStatus
from conversations.services.handoffs import handoff_end, handoff_start
from conversations.services.process import thread_lock
from flows.services import flow_sessions_interrupt
from integrations import events as webhook_events
from tenants import access
from tenants.access import Action

MAX_NOTE = 4096

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
    - The wait for a human is recorded (`conversations.services.handoffs`): a takeover opens a
      handoff, resuming automation or leaving the open status ends it.

    The given instance is refreshed with the stored values.
    """
    if status is not None and status not in ThreadStatus.values:
        raise ValidationError({"status": f"Must be one of: {', '.join(ThreadStatus.values)}."})
    locked = thread_lock(thread_id=thread.pk)
    if locked is None:
        raise ChatThread.DoesNotExist
    changed: list[str] = []
    if status is not None and status != locked.status:
        locked.status = status
        changed.append("status")
        if status == ThreadStatus.CLOSED and needs_human is None:
            # Closing ends a handoff (the flow format: automation stays paused "until an
            # agent resumes it or closes the thread"); the contact's next message starts over.
            needs_human = False
    now = timezone.now()
    if needs_human is not None and needs_human != locked.needs_human:
        _needs_human_set(locked, needs_human=needs_human, now=now)
        changed += ["needs_human", "handoff_reason"]
    _handoff_follow(locked, changed=changed, now=now)
    if changed:
        _thread_save(locked, changed=changed)
    for field in ("status", "needs_human", "handoff_reason", "updated_at"):
        setattr(thread, field, getattr(locked, field))
    return thread


def _needs_human_set(locked: ChatThread, *, needs_human: bool, now: datetime) -> None:
    """A human takes over (a waiting flow session is interrupted) or hands back."""
    locked.needs_human = needs_human
    if needs_human:
        locked.handoff_reason = locked.handoff_reason or "agent"
        flow_sessions_interrupt(thread=locked, reason="agent", now=now)
    else:
        locked.handoff_reason = ""


def _handoff_follow(locked: ChatThread, *, changed: list[str], now: datetime) -> None:
    """The wait for a human follows the change: opened by a takeover of an open thread,
    ended by resuming automation or leaving the open status."""
    if locked.needs_human and locked.status == ThreadStatus.OPEN:
        if "needs_human" in changed or "status" in changed:
            handoff_start(thread=locked, source=HandoffSource.AGENT, now=now)
    elif changed:
        handoff_end(thread_ids=[locked.pk], now=now)


def _thread_save(locked: ChatThread, *, changed: list[str]) -> None:
    locked.save(update_fields=[*changed, "updated_at"])
    if "needs_human" in changed and locked.needs_human:
        webhook_events.thread_handoff(locked, reason=locked.handoff_reason, by="agent")
    if "status" in changed and locked.status == ThreadStatus.CLOSED:
        webhook_events.thread_closed(locked)
    logger.info(
        "thread updated",
        extra={
            "thread_id": str(locked.pk),
            "fields": changed,
            "needs_human": locked.needs_human,
        },
    )


def thread_assign(*, thread: ChatThread, assignee: Any) -> ChatThread:
    """Give the thread to `assignee` (None: unassigned). Only someone who may answer the
    thread's tenant (an owner, an agent, platform staff) can be assigned: else ValidationError
    and nothing changes."""
    if assignee is not None and not access.can(assignee, Action.REPLY, thread.tenant_id):
        raise ValidationError({"assignee": "This person cannot answer this tenant's threads."})
    now = timezone.now()
    ChatThread.objects.filter(pk=thread.pk).update(assigned_to=assignee, updated_at=now)
    thread.assigned_to = assignee
    thread.updated_at = now
    logger.info(
        "thread assigned",
        extra={"thread_id": str(thread.pk), "assigned": assignee is not None},
    )
    return thread


def thread_mark_seen(*, thread: ChatThread) -> None:
    """Someone who may answer has read the conversation up to now: its inbound messages so far
    are no longer unread. (`updated_at` is left alone: reading changes nothing an API client
    syncs.)"""
    now = timezone.now()
    ChatThread.objects.filter(pk=thread.pk).update(agent_last_seen_at=now)
    thread.agent_last_seen_at = now


@transaction.atomic
def thread_note_add(*, thread: ChatThread, text: str, author: Any = None) -> ThreadNote:
    """A private note on the thread (never sent to the contact). ValidationError for an empty
    or too long text, and for a contact whose data was erased: notes are the contact's data
    too. Holds the thread row lock, as the erasure does, so a note never slips in beside a
    running erasure."""
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "A note cannot be empty."})
    if len(text) > MAX_NOTE:
        raise ValidationError({"text": f"A note has at most {MAX_NOTE} characters."})
    locked = thread_lock(thread_id=thread.pk)
    if locked is None:
        raise ChatThread.DoesNotExist
    if locked.contact.erased_at is not None:
        raise ValidationError({"text": "The contact's data was erased: no note can be added."})
    note = ThreadNote.objects.create(
        tenant_id=thread.tenant_id,
        thread=thread,
        author=author if getattr(author, "pk", None) else None,
        text=text,
    )
    ChatThread.objects.filter(pk=thread.pk).update(updated_at=timezone.now())
    logger.info("note added", extra={"thread_id": str(thread.pk), "note_id": str(note.pk)})
    return note
