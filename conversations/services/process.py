"""The message pipeline after a message is stored: lock the thread, apply consent keywords,
run the automation, store its replies (sent after commit); and the flows' timers, fired the
same way.

Everything that moves a conversation on takes the thread's row lock through `thread_lock`,
and everything that takes all of a contact's threads at once (a merge, an erasure) through
`contact_threads_lock`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from conversations.models import (
    ChatThread,
    Direction,
    HandoffSource,
    Message,
    MessageAttachment,
    ThreadStatus,
)
from conversations.selectors import thread_tenant_id
from conversations.services.consent import consent_keyword_apply
from conversations.services.handoffs import handoff_start
from core import locks
from core.context import tenant_bound
from flows.engine import AIAnswerNeeded
from flows.selectors import flow_sessions_due_timeouts, flow_sessions_stale
from flows.services import (
    NO_FLOW_KINDS,
    FlowHandoff,
    FlowRun,
    Reply,
    flow_expire_stale_wait,
    flow_fire_wait,
    flow_handle_inbound,
)
from integrations import events as webhook_events

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger(__name__)


def thread_lock(*, thread_id: object, skip_locked: bool = False) -> ChatThread | None:
    """Lock the thread's row until the transaction ends and return it, with its contact,
    channel and tenant; None when the thread does not exist or is soft-deleted, or, with
    `skip_locked`, when another transaction holds the lock (that one moves it on).

    The invariant: whoever holds this lock is the only one moving the conversation's state on.
    Inbound processing, a flow's timer, a staff change of status or handoff, a note, a merge
    and an erasure all hold it, so two of them never interleave on one thread. Writes of
    single columns that no decision reads under the lock go without it: activity stamps of a
    stored reply or agent message, an assignment, status callbacks on messages. Only the thread row
    is locked; a caller that also locks the contact takes it after the thread (the order
    every caller keeps: thread, then contact), so two of them never deadlock. Requires a
    transaction (on a database without row locks, such as SQLite, it is a plain read).
    """
    skip_locked = skip_locked and connection.features.has_select_for_update_skip_locked
    return (
        ChatThread.objects.select_for_update(skip_locked=skip_locked, of=("self",))
        .select_related("contact", "channel", "tenant")
        .filter(pk=thread_id)
        .first()
    )


def contact_threads_lock(
    *, contact_ids: list[object], include_deleted: bool = False, no_key: bool = False
) -> list[object]:
    """Lock every thread of these contacts (in primary key order, so two callers never
    deadlock) and return their ids: the lock of `thread_lock`, for work on a contact's whole
    conversation (a merge, an erasure), taken before the contacts' rows.

    `include_deleted` takes soft-deleted threads too. `no_key` takes FOR NO KEY UPDATE where
    the database has it: a concurrent insert of a message needs only KEY SHARE on its thread,
    so it never waits on (or deadlocks against) this lock. Requires a transaction.
    """
    manager = ChatThread.all_objects if include_deleted else ChatThread.objects
    no_key = no_key and connection.features.has_select_for_no_key_update
    return list(
        manager.select_for_update(no_key=no_key)
        .filter(contact_id__in=contact_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


MAX_MODEL_ROUNDS = 5


@dataclass(frozen=True)
class Automated:
    """What the automation answers one inbound message with. `consent_notice`: the replies are
    the confirmation of an opt-out, the one message a contact who just opted out still gets."""

    replies: list[Reply]
    consent_notice: bool = False


def message_automate(
    *,
    thread: ChatThread,
    message: Message,
    ai_answers: dict[tuple[object, ...], object] | None = None,
) -> Automated:
    """Consent, then automation, for one stored inbound message: a consent keyword is
    answered here (`consent_keyword_apply`), anything else goes to the thread's flow
    (`flows.services.flow_handle_inbound`, whose `ai_answers` contract holds here too). A
    reaction is never a consent keyword (and the flow ignores it too).

    Requires the thread row lock (`thread_lock`) and the thread loaded with its contact and
    tenant; replies are returned, not stored. A message the contact took back before it
    was handled (`metadata.unsent`: an unsend that arrived before or soon after it) gets no
    answer at all.
    """
    if (message.metadata or {}).get("unsent"):
        return Automated(replies=[])
    if message.kind not in NO_FLOW_KINDS:
        consent = consent_keyword_apply(thread=thread, message=message)
        if consent is not None:
            return Automated(
                replies=[Reply(text=consent.text)], consent_notice=consent.just_opted_out
            )
    run = flow_handle_inbound(thread=thread, message=message, ai_answers=ai_answers)
    if run.handoff is not None:
        _handoff_apply(thread=thread, handoff=run.handoff)
    return Automated(replies=run.replies)


def _flow_run_apply(*, thread: ChatThread, run: FlowRun) -> None:
    """Act on what a flow's timer decided: hand the thread to a human if it says so, store
    its replies (sent after commit). Requires the thread row lock."""
    from conversations.services.outbound import replies_store

    if run.handoff is not None:
        _handoff_apply(thread=thread, handoff=run.handoff)
    if run.replies:
        replies_store(thread=thread, replies=run.replies)


def _handoff_apply(*, thread: ChatThread, handoff: FlowHandoff) -> None:
    """The flow handed the conversation to a human: automation pauses (`needs_human`, with
    the flow's reason), the wait for a human starts, webhook receivers hear of it. Requires
    the thread row lock."""
    thread.needs_human = True
    thread.handoff_reason = handoff.reason
    thread.save(update_fields=["needs_human", "handoff_reason", "updated_at"])
    handoff_start(thread=thread, source=HandoffSource.FLOW, now=handoff.at, flow_id=handoff.flow_id)
    webhook_events.thread_handoff(thread, reason=thread.handoff_reason, by="flow")


def thread_process_inbound(*, thread_id: object, tenant_id: object | None = None) -> int:
    """Run the flow on the thread's unprocessed inbound messages; return how many it handled.

    Guarantees: per thread, one caller at a time moves the conversation on (each transaction
    holds the thread's row lock, `thread_lock`) and messages are handled in arrival order
    (created_at, id). Each message's replies are stored and `processed_at` is set in the same
    transaction, so a message is handled exactly once; sending happens after commit. A
    language model is never called inside a transaction: a step that needs one is rolled
    back, the model is called with the prompt built in the transaction, and the step runs
    again with the answer (the messages before it are committed first, the ones after it
    wait). Only one caller per thread asks the model (on PostgreSQL a session-level advisory
    lock, taken only then: a second caller that needs an answer leaves the thread to the
    first, which looks again after letting go). A missing or deleted thread handles nothing.
    Log lines of the run carry the thread's tenant (`tenant_id` when the caller knows it, else
    looked up).
    """
    with tenant_bound(tenant_id or thread_tenant_id(thread_id=thread_id)):
        return _thread_process_inbound(thread_id=thread_id)


def _thread_process_inbound(*, thread_id: object) -> int:
    # Most steps need no model: one transaction under the row lock, and no advisory lock
    # (a caller that waited on the row lock reads what is pending after the holder committed,
    # so nothing is left behind).
    answers: dict[tuple[object, ...], object] = {}
    handled, needed = _process_round(thread_id=thread_id, answers=answers)
    if needed is None:
        return handled
    return handled + _thread_process_with_model(thread_id=thread_id, answers=answers)


def _thread_process_with_model(
    *, thread_id: object, answers: dict[tuple[object, ...], object]
) -> int:
    """Process the thread's pending messages, model answers included, as the thread's only
    model caller. Model answers live for the whole run, so that looking again after a burst
    never asks the model a second time for a message it already answered."""
    handled = 0
    while True:
        with locks.try_advisory_lock(locks.THREAD_PROCESSOR, thread_id) as acquired:
            if not acquired:
                return handled  # the holder looks again after letting go
            progress, capped = _process_rounds(thread_id=thread_id, answers=answers)
        handled += progress
        if not _has_unprocessed(thread_id):
            return handled
        if capped and not progress:
            # The first pending message still wants a model answer after MAX_MODEL_ROUNDS
            # calls (its prompt keeps changing): leave it to process_pending, do not spin.
            logger.warning(
                "model answers kept changing; the rest is left for process_pending",
                extra={"thread_id": str(thread_id)},
            )
            return handled


def _has_unprocessed(thread_id: object) -> bool:
    """Whether the thread (live: a deleted one is processed by nobody) has inbound messages
    not processed yet; something that came in while the lock was held, whose own task left
    it to the holder."""
    return Message.objects.filter(
        thread_id=thread_id,
        thread__deleted_at__isnull=True,
        direction=Direction.INBOUND,
        processed_at__isnull=True,
    ).exists()


def _process_rounds(
    *, thread_id: object, answers: dict[tuple[object, ...], object]
) -> tuple[int, bool]:
    """Process until nothing is pending; each round ends at a model call or when done. At most
    MAX_MODEL_ROUNDS model calls, then one more round with the answers gathered; the caller
    looks again (keeping `answers`) while messages remain. Returns how many were handled,
    and whether the model calls ran out (a message still wanted an answer)."""
    from flows.ai import answer_needed

    handled = 0
    for _ in range(MAX_MODEL_ROUNDS):
        count, needed = _process_round(thread_id=thread_id, answers=answers)
        handled += count
        if needed is None:
            return handled, False
        # Outside any transaction: the model may take up to LLM_TIMEOUT_SECONDS.
        key, outcome = answer_needed(needed, log_extra={"thread_id": str(thread_id)})
        answers[key] = outcome
    count, needed = _process_round(thread_id=thread_id, answers=answers)
    return handled + count, needed is not None


def _process_round(
    *, thread_id: object, answers: dict[tuple[object, ...], object]
) -> tuple[int, AIAnswerNeeded | None]:
    """One transaction under the thread row lock: the pending messages in order, up to the
    first that needs a model answer not in `answers` (returned, with nothing of it kept)."""
    from conversations.services.outbound import replies_store

    needed: AIAnswerNeeded | None = None
    with transaction.atomic():
        thread = thread_lock(thread_id=thread_id)
        if thread is None:
            return 0, None
        pending: list[Message] = list(
            Message.objects.filter(
                thread=thread, direction=Direction.INBOUND, processed_at__isnull=True
            ).order_by("created_at", "id")
        )
        if not pending:
            return 0, None
        if thread.contact.erased_at is not None:
            return _discard_for_erased_contact(thread=thread, pending=pending), None
        done: list[Message] = []
        for message in pending:
            message.thread = thread
            message.channel = thread.channel
            try:
                with transaction.atomic():
                    automated = message_automate(thread=thread, message=message, ai_answers=answers)
                    replies_store(
                        thread=thread,
                        replies=automated.replies,
                        consent_notice=automated.consent_notice,
                        touch_thread=False,
                    )
            except AIAnswerNeeded as exc:
                needed = exc  # rolled back; this message and the later ones wait for it
                break
            except DatabaseError:
                raise  # the whole batch is retried (process_pending picks it up)
            except Exception as exc:
                # A bug on one message must not block the thread forever: it is marked
                # processed with the error type, and nothing was sent for it.
                logger.exception(
                    "flow failed on a message",
                    extra={"message_id": str(message.pk), "thread_id": str(thread.pk)},
                )
                Message.objects.filter(pk=message.pk).update(
                    metadata={**message.metadata, "processing_error": type(exc).__name__}
                )
            done.append(message)
        if done:
            _mark_processed(thread=thread, messages=done)
    if done:
        logger.info(
            "inbound messages processed",
            extra={"thread_id": str(thread.pk), "count": len(done)},
        )
    return len(done), needed


def _mark_processed(*, thread: ChatThread, messages: Sequence[Message]) -> None:
    """Set `processed_at` and bring the thread's times and status up to these messages."""
    now = timezone.now()
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(processed_at=now, updated_at=now)
    latest = max(m.created_at for m in messages)
    update_fields = ["updated_at"]
    if thread.last_inbound_at is None or thread.last_inbound_at < latest:
        thread.last_inbound_at = latest
        update_fields.append("last_inbound_at")
    if thread.last_activity_at is None or thread.last_activity_at < latest:
        thread.last_activity_at = latest
        update_fields.append("last_activity_at")
    if thread.status != ThreadStatus.OPEN:
        thread.status = ThreadStatus.OPEN
        update_fields.append("status")
        if thread.needs_human:
            # Reopened while a person has it (e.g. a Business-app reply on a closed thread):
            # the contact waits for that person again, so the queue shows the wait.
            handoff_start(thread=thread, source=HandoffSource.AGENT, now=now)
    if len(update_fields) > 1:
        thread.save(update_fields=update_fields)


def _discard_for_erased_contact(*, thread: ChatThread, pending: Sequence[Message]) -> int:
    """Messages that raced with the erasure of their contact (stored from a snapshot taken
    before the erasure committed) keep no text, metadata or media, and run no flow.

    Requires the thread row lock (held by `thread_process_inbound`).
    """
    from conversations.services.privacy import stored_files_delete

    now = timezone.now()
    ids = [message.pk for message in pending]
    attachments = MessageAttachment.all_objects.filter(message_id__in=ids)
    file_names = [name for name in attachments.values_list("file", flat=True) if name]
    attachments.delete()
    if file_names:
        contact_id = str(thread.contact_id)
        transaction.on_commit(lambda: stored_files_delete(file_names, contact_id=contact_id))
    # As the erasure leaves its messages, so that running it again changes nothing.
    Message.objects.filter(pk__in=ids).update(
        text="",
        metadata={},
        private_data={},
        error_detail="",
        processed_at=now,
        updated_at=now,
    )
    logger.info(
        "inbound messages of an erased contact discarded",
        extra={"thread_id": str(thread.pk), "count": len(ids)},
    )
    return len(ids)


# --- flow timers ----------------------------------------------------------------------------

_DUE_BATCH = 500


def flow_fire_due_timeouts(*, now: datetime | None = None, expire_stale: bool = True) -> int:
    """Fire every due question/input timeout; return how many fired.

    Each session is handled in its own transaction under its thread's row lock (a thread
    another worker holds is skipped: that one moves it on), re-read there, and fired only for
    the wait it was due for (`wait_seq`, see `flows.services.flow_fire_wait`), so a late timer
    never moves a conversation that already went on, and two workers never fire the same
    wait. Replies are stored (and sent after commit) and a handoff applied as for an inbound
    message. With `expire_stale`, stale sessions are expired too
    (`flow_expire_stale_sessions`).
    """
    now = now or timezone.now()
    fired = 0
    for session_pk, thread_id, wait_seq in flow_sessions_due_timeouts(now=now, limit=_DUE_BATCH):
        try:
            fired += int(_fire_one(session_pk, thread_id, wait_seq, now))
        except Exception:
            logger.exception("flow timeout failed", extra={"session": str(session_pk)})
    if expire_stale:
        flow_expire_stale_sessions(now=now)
    return fired


def _fire_one(session_pk: object, thread_id: object, wait_seq: int, now: datetime) -> bool:
    with transaction.atomic():
        thread = thread_lock(thread_id=thread_id, skip_locked=True)
        if thread is None:
            return False
        run = flow_fire_wait(thread=thread, session_pk=session_pk, wait_seq=wait_seq, now=now)
        if run is None:
            return False
        _flow_run_apply(thread=thread, run=run)
        return True


def flow_expire_stale_sessions(*, now: datetime) -> int:
    """End, silently, waiting sessions past their flow's `session_timeout_seconds`.

    Only waits without a node timeout go stale. Each session is re-checked under its thread's
    row lock. Returns how many were expired.
    """
    expired = 0
    for session_pk, thread_id, wait_seq in flow_sessions_stale(now=now, limit=_DUE_BATCH):
        with transaction.atomic():
            if thread_lock(thread_id=thread_id, skip_locked=True) is None:
                continue
            expired += int(
                flow_expire_stale_wait(session_pk=session_pk, wait_seq=wait_seq, now=now)
            )
    return expired
