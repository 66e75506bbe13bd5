"""Storing and sending replies, and applying delivery statuses.

Sending is at most once per message: `message_deliver` marks the message as in flight in a
committed transaction before it calls the provider, records the provider's id in the same
transaction as the new status, and never calls the provider for a message that has a provider
id, is no longer queued, or whose earlier attempt may have reached the provider.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Case, F, QuerySet, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from channels_app.models import ChannelInstance
from channels_app.providers import (
    AmbiguousSendError,
    OutboundPayload,
    ParsedStatus,
    PermanentSendError,
    TransientSendError,
    sending_provider,
)
from channels_app.providers.base import STATUS_RANK
from channels_app.providers.outcomes import Outcome, outcome_of
from conversations.models import (
    ChatThread,
    Contact,
    Direction,
    Message,
    MessageStatus,
    Sender,
)
from conversations.selectors import thread_tenant_id, thread_window_open
from conversations.services.consent import contact_opt_out
from conversations.services.handoffs import handoff_first_reply
from conversations.services.templates import flow_template_message, template_payload
from core import locks, metrics
from core.context import tenant_bound
from core.crypto import provider_id_pseudonym
from core.tasks import enqueue_on_commit
from integrations import events as webhook_events

logger = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 5
# An attempt that started longer ago than this and never finished died mid-request.
IN_FLIGHT_STALE_AFTER = timedelta(minutes=10)
MAX_TEXT = 4096


class OutsideWindowError(Exception):
    """WhatsApp only allows free-form messages within 24 hours of the contact's last message."""

    def __init__(self) -> None:
        super().__init__(
            "The contact's last message is more than 24 hours old, so WhatsApp does not "
            "allow a free-form message now. Wait for the contact to write again."
        )


class ContactErasedError(Exception):
    """The contact's data was erased: there is nobody to write to."""

    def __init__(self) -> None:
        super().__init__("The contact's data was erased, so no message can be sent to them.")


class TransientDeliveryError(Exception):
    """The provider did not take the message this time; the send task retries it later."""

    def __init__(self, message_id: object, code: str) -> None:
        super().__init__(f"Message {message_id} not sent yet ({code}); will retry.")
        self.message_id = message_id
        self.code = code


class ReplyLike(Protocol):
    text: str
    sender: str
    media_url: str | None
    choices: tuple[tuple[str, str], ...]


def _kind(reply: ReplyLike) -> str:
    if reply.choices:
        return "interactive"
    if reply.media_url:
        return "image"
    return "text"


def _schedule_send(thread: ChatThread) -> None:
    """After commit, send the thread's queued messages in order (see thread_deliver_queued)."""
    from conversations import tasks

    enqueue_on_commit(tasks.send_thread, str(thread.pk), tenant_id=str(thread.tenant_id))


def replies_store(
    *,
    thread: ChatThread,
    replies: Sequence[ReplyLike],
    consent_notice: bool = False,
    touch_thread: bool = True,
) -> list[Message]:
    """Store replies as queued outbound messages and schedule their sending after commit.

    Stores nothing and sends nothing when the contact has opted out, except with
    `consent_notice=True`: the one confirmation answering the opt-out keyword itself (marked
    in `metadata["consent_notice"]` so that delivery lets it through). The messages keep the
    text, the media URL and the choices (`metadata["choices"]` as `[{"id", "label"}]`) and
    are sent in the order given. With `touch_thread` the thread's `last_activity_at` moves to
    now (`thread_process_inbound` turns it off: replies to a message share its activity time).
    """
    if not replies:
        return []
    if thread.contact.is_opted_out and not consent_notice:
        logger.info(
            "replies skipped: contact opted out",
            extra={"thread_id": str(thread.pk), "count": len(replies)},
        )
        return []
    now = timezone.now()
    messages = []
    for position, reply in enumerate(replies):
        if getattr(reply, "template", None) is not None:  # a flow's WhatsApp template
            created_at = now + timedelta(microseconds=position)
            messages.append(
                flow_template_message(thread=thread, reply=reply, created_at=created_at)
            )
            continue
        metadata: dict[str, Any] = {}
        if reply.choices:
            metadata["choices"] = [{"id": cid, "label": label} for cid, label in reply.choices]
        if reply.media_url:
            metadata["media_url"] = reply.media_url
        if consent_notice:
            metadata["consent_notice"] = True
        messages.append(
            Message(
                tenant_id=thread.tenant_id,
                thread=thread,
                channel_id=thread.channel_id,
                direction=Direction.OUTBOUND,
                kind=_kind(reply),
                text=(reply.text or "")[:MAX_TEXT],
                status=MessageStatus.QUEUED,
                sender=reply.sender if reply.sender in Sender.values else Sender.FLOW,
                metadata=metadata,
                # strictly increasing, so reading by created_at gives the sending order
                created_at=now + timedelta(microseconds=position),
            )
        )
    Message.objects.bulk_create(messages)
    failed = [message for message in messages if message.status == MessageStatus.FAILED]
    for message in failed:  # a flow's template that cannot be sent: failed from the start
        webhook_events.message_status(message)
    metrics.message_queued(len(messages) - len(failed))
    if touch_thread:
        ChatThread.objects.filter(pk=thread.pk).update(last_activity_at=now, updated_at=now)
    _schedule_send(thread)
    return messages


@transaction.atomic
def message_send_agent(*, thread: ChatThread, text: str, user: Any = None) -> Message:
    """Queue a staff member's (or API client's) message and send it after commit.

    The first agent message of a handoff records its first reply time
    (`handoffs.handoff_first_reply`).

    Raises ValidationError for an empty or too long text, ContactErasedError for an erased
    contact and OutsideWindowError when the contact's last message is more than 24 hours old
    (nothing is stored then).
    """
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": "This field may not be blank."})
    if len(text) > MAX_TEXT:
        raise ValidationError(
            {"text": f"Ensure this field has no more than {MAX_TEXT} characters."}
        )
    if thread.contact.erased_at is not None:
        raise ContactErasedError()
    if not thread_window_open(thread=thread):
        raise OutsideWindowError()
    now = timezone.now()
    message = Message.objects.create(
        tenant_id=thread.tenant_id,
        thread=thread,
        channel_id=thread.channel_id,
        direction=Direction.OUTBOUND,
        kind="text",
        text=text,
        status=MessageStatus.QUEUED,
        sender=Sender.AGENT,
        sent_by=user if getattr(user, "pk", None) else None,
        created_at=now,
    )
    ChatThread.objects.filter(pk=thread.pk).update(last_activity_at=now, updated_at=now)
    handoff_first_reply(thread_id=thread.pk, now=now)
    _schedule_send(thread)
    metrics.message_queued(1)
    logger.info(
        "agent message queued", extra={"message_id": str(message.pk), "thread_id": str(thread.pk)}
    )
    return message


def _payload(message: Message) -> OutboundPayload:
    choices = tuple(
        (str(choice.get("id", "")), str(choice.get("label", "")))
        for choice in (message.metadata or {}).get("choices", [])
        if isinstance(choice, dict)
    )
    return OutboundPayload(
        to_phone=message.thread.contact.phone,
        to_user_id=message.thread.contact.wa_user_id,
        to_ig_user_id=message.thread.contact.ig_user_id,
        text=message.text or "",
        media_url=(message.metadata or {}).get("media_url") or None,
        choices=choices,
        reference=str(message.pk),
        template=template_payload(message),
    )


def _fail(message: Message, *, code: str, detail: str) -> None:
    message.status = MessageStatus.FAILED
    message.error_code = code[:64]
    message.error_detail = detail[:1000]
    message.sending_since = None
    message.save(
        update_fields=["status", "error_code", "error_detail", "sending_since", "updated_at"]
    )
    webhook_events.message_status(message)


# Replies claimed, sent and recorded together (#16). A worker that dies mid-batch leaves the
# whole batch in flight, and each of its messages is then failed as unconfirmed (never sent
# twice): the batch bounds how many replies one lost worker can cost.
SEND_BATCH = 10


def _queued(thread_id: object, *, tried: set[object]) -> QuerySet[Message]:
    """The thread's queued outbound messages not tried yet in this run."""
    return Message.objects.filter(
        thread_id=thread_id, direction=Direction.OUTBOUND, status=MessageStatus.QUEUED
    ).exclude(pk__in=tried)


def thread_deliver_queued(*, thread_id: object, tenant_id: object | None = None) -> Counter[str]:
    """Send the thread's queued outbound messages, oldest first; count the outcomes.

    The counter has one entry per `message_deliver` outcome ("sent", "failed", "skipped"),
    and "busy" when another sender had the thread. Guarantees: one sender per thread at a
    time, so replies reach the provider in the order they were stored even when several
    workers send for the same thread. A caller that finds another sender at work returns at
    once: that sender looks for queued messages again after letting go, so a message queued
    meanwhile is never left behind. Messages go in batches of up to SEND_BATCH, each claimed
    in one statement and, once the provider answered, recorded in one (`_deliver`). Raises
    TransientDeliveryError at the first message that cannot go now; the later ones wait
    behind it (for the task's retry, or `process_pending`). Log lines of the run carry the
    thread's tenant (`tenant_id` when the caller knows it, else looked up).
    """
    with tenant_bound(tenant_id or thread_tenant_id(thread_id=thread_id)):
        return _thread_deliver_queued(thread_id=thread_id)


def _thread_deliver_queued(*, thread_id: object) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    tried: set[object] = set()
    while True:
        with locks.try_advisory_lock(locks.THREAD_SENDER, thread_id) as acquired:
            if not acquired:
                outcomes["busy"] += 1
                return outcomes
            while True:
                batch = _deliver(_queued(thread_id, tried=tried), limit=SEND_BATCH, tried=tried)
                outcomes.update(batch.outcomes)
                if batch.read < SEND_BATCH and not batch.again:
                    break  # the thread's queue is empty (the look below sees what came since)
        if not _queued(thread_id, tried=tried).exists():
            return outcomes


def message_deliver(*, message_id: object) -> str:
    """Send one queued outbound message through its channel's provider, at most once.

    Returns "sent", "failed", "skipped" (not queued any more, already accepted, in flight
    elsewhere) or "missing". Raises TransientDeliveryError when the provider did not take it
    and a later attempt may (the message stays queued; after MAX_SEND_ATTEMPTS it is failed).
    A permanent refusal records the provider's error code and reason. An attempt whose outcome
    is unknown (a read timeout, a worker that died mid-request) is recorded as failed and never
    repeated, because the provider may already have accepted it. Automated messages to a
    contact who opted out are not sent. A message put back in the queue by a rate-limit
    callback is not sent before its `metadata["retry_after"]` (TransientDeliveryError until
    then). A refusal whose code means the recipient unsubscribed also opts the contact out.
    """
    batch = _deliver(Message.objects.filter(pk=message_id), limit=1, tried=set())
    return next(iter(batch.outcomes), "missing")


@dataclass(frozen=True)
class _Claimed:
    """A message claimed for one attempt (loaded with its channel), and what to send."""

    message: Message
    payload: OutboundPayload

    @property
    def channel(self) -> ChannelInstance:
        return self.message.channel


@dataclass(frozen=True)
class _Attempt:
    """What the provider answered for one claimed message (see `_send`)."""

    claimed: _Claimed
    outcome: str  # "sent", "transient", "permanent", "ambiguous"
    result: Any
    error: Exception | None

    @property
    def code(self) -> str:
        """The provider's error code (the error's type when it gave none)."""
        return str(getattr(self.error, "code", "") or type(self.error).__name__)

    @property
    def opts_out(self) -> bool:
        """A refusal whose code says the recipient unsubscribed or blocked the business."""
        provider = self.claimed.channel.provider
        return (
            self.outcome == "permanent"
            and outcome_of(provider=provider, code=self.code) is Outcome.OPT_OUT
        )

    @property
    def retry(self) -> bool:
        """The provider did not take it this time, and a later attempt may."""
        return (
            self.outcome == "transient" and self.claimed.message.send_attempts < MAX_SEND_ATTEMPTS
        )


@dataclass
class _Batch:
    """What `_deliver` did: `read` messages looked at, and their outcomes."""

    read: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    again: bool = False  # claims were given back: the thread's queue is worth another look
    lock_lost: bool = False  # the connection holding the thread's sender lock was lost


def _deliver(messages: QuerySet[Message], *, limit: int, tried: set[object]) -> _Batch:
    """Claim, send and record up to `limit` of `messages`, oldest first, in three phases:

    1. claim, committed before any network call: the messages to send are marked in flight
       (`sending_since`) and their attempts counted, in one statement (`_claim`);
    2. send, outside any transaction, one message after the other (`_send`), stopping at the
       first that the provider did not take but may take later, or whose refusal says the
       contact unsubscribed (the rest of the batch is given back, claims undone, and comes
       again: an automated reply is then failed as `opted_out`);
    3. record, in one transaction: the accepted ones in one statement with their provider ids
       (`_record_sent`), a refusal or an unknown outcome each with its reason
       (`_record_failure`); tried again on a database error (`_record_committed`).

    A message the provider may have accepted is never sent again: until its outcome is
    recorded it stays in flight, and an attempt left in flight longer than
    IN_FLIGHT_STALE_AFTER (its worker died; the batch's later messages too, which it may have
    sent) is failed as unconfirmed by the next claim. Raises TransientDeliveryError, after
    the record committed, when a message must wait.
    """
    batch = _Batch()
    claimed, wait = _claim(messages, limit=limit, tried=tried, batch=batch)
    attempts: list[_Attempt] = []
    for position, claim in enumerate(claimed):
        attempts.append(_send(claim))
        if attempts[-1].retry or attempts[-1].opts_out:
            _release([later.message.pk for later in claimed[position + 1 :]], tried=tried)
            batch.again = position + 1 < len(claimed)
            break
    if attempts:
        _record_committed(attempts, batch=batch)
    if batch.lock_lost:  # not one more message without the lock: the task tries again later
        raise TransientDeliveryError(attempts[-1].claimed.message.pk, "connection_lost")
    stop = next((attempt for attempt in attempts if attempt.retry), None)
    if stop is not None:
        message_id = stop.claimed.message.pk
        raise TransientDeliveryError(message_id, str(stop.claimed.message.error_code))
    if wait is not None:
        raise wait
    return batch


def _release(message_ids: list[object], *, tried: set[object]) -> None:
    """Give back the claims of messages a batch stopped before (committed on its own, before
    the record): queued as they were, to be claimed again."""
    if message_ids:
        Message.objects.filter(pk__in=message_ids).update(
            sending_since=None, send_attempts=F("send_attempts") - 1
        )
        tried.difference_update(message_ids)


RECORD_TRIES = 3


def _record_committed(attempts: list[_Attempt], *, batch: _Batch) -> None:
    """Phase 3 of `_deliver`: `_record` in a transaction of its own. Tried again (up to
    RECORD_TRIES) when the database fails it (a deadlock, a lost connection): until recorded,
    the batch's messages stay in flight and would end as unconfirmed. When the provider
    reused an id we already hold, the statement recording the sent ones is refused whole, and
    they are recorded again one at a time (no savepoint around the common case's single
    statement). A lost connection took the thread's sender lock with it: the batch is
    recorded on a new one, and `batch.lock_lost` tells the caller to send nothing more."""
    one_by_one = False
    tries = 0
    while True:
        tries += 1
        outcomes: Counter[str] = Counter()
        try:
            with transaction.atomic():
                _record(attempts, outcomes=outcomes, one_by_one=one_by_one)
        except IntegrityError:
            if one_by_one:
                raise
            one_by_one = True
            continue
        except DatabaseError:
            if tries >= RECORD_TRIES or connection.in_atomic_block:
                raise
            logger.warning("recording sends failed, trying again", extra={"try": tries})
            if connection.connection is not None and not connection.is_usable():
                connection.close()  # the next statement connects again
                batch.lock_lost = True
            continue
        batch.outcomes.update(outcomes)
        return


def _claim(
    messages: QuerySet[Message], *, limit: int, tried: set[object], batch: _Batch
) -> tuple[list[_Claimed], TransientDeliveryError | None]:
    """Phase 1 of `_deliver`: lock up to `limit` messages, oldest first, and claim those to
    send now (the others are counted in `batch`: "skipped", or "failed" and recorded). A
    message that must wait (a rate limit's `retry_after`) stops the claim there: returned
    with the messages before it."""
    with transaction.atomic():
        rows = list(
            messages.select_for_update(of=("self",))
            .select_related("thread__contact", "channel")
            .order_by("created_at", "id")[:limit]
        )
        batch.read = len(rows)
        wait: TransientDeliveryError | None = None
        to_send: list[Message] = []
        for message in rows:
            tried.add(message.pk)
            try:
                refused = _refuse_claim(message)
            except TransientDeliveryError as exc:
                wait = exc  # it waits, and so do the later ones
                break
            if refused is not None:
                batch.outcomes[refused] += 1
            else:
                to_send.append(message)
        now = timezone.now()
        if to_send:
            Message.objects.filter(pk__in=[message.pk for message in to_send]).update(
                sending_since=now, send_attempts=F("send_attempts") + 1, updated_at=now
            )
        for message in to_send:
            message.sending_since = now
            message.send_attempts += 1
            if "retry_after" in (message.metadata or {}):  # its wait is over
                message.metadata.pop("retry_after")
                message.save(update_fields=["metadata"])
        return [_Claimed(message=message, payload=_payload(message)) for message in to_send], wait


def _refuse_claim(message: Message) -> str | None:
    """Why the locked message is not sent now ("skipped" or "failed", recorded), or None.
    Raises TransientDeliveryError before a rate limit's `retry_after`."""
    if (
        message.direction != Direction.OUTBOUND
        or message.status != MessageStatus.QUEUED
        or message.provider_message_id
    ):
        return "skipped"
    in_flight = message.sending_since or _in_flight_legacy(message)
    if in_flight is not None:
        if timezone.now() - in_flight < IN_FLIGHT_STALE_AFTER:
            return "skipped"
        _fail(
            message,
            code="send_unconfirmed",
            detail="An earlier attempt stopped mid-request; not repeated to avoid a duplicate.",
        )
        return "failed"
    retry_after = parse_datetime(str((message.metadata or {}).get("retry_after") or ""))
    if retry_after is not None and timezone.now() < retry_after:
        # The provider asked us to slow down (a rate-limit callback): not before then.
        raise TransientDeliveryError(message.pk, message.error_code or "retry_after")
    contact = message.thread.contact
    automated = message.sender != Sender.AGENT and not message.metadata.get("consent_notice")
    if automated and contact.is_opted_out:
        _fail(message, code="opted_out", detail="The contact opted out of automated messages.")
        return "failed"
    if not contact.address or contact.erased_at:
        _fail(
            message,
            code="no_recipient",
            detail="The contact has neither a phone number nor a WhatsApp user id.",
        )
        return "failed"
    return None


def _in_flight_legacy(message: Message) -> datetime | None:
    """The in-flight mark of a worker from before `sending_since` was a column (it kept it in
    `metadata`), still honoured while such workers may run beside this code; unreadable
    marks count as long gone."""
    mark = (message.metadata or {}).get("sending_since")
    if not mark:
        return None
    try:
        since = parse_datetime(str(mark))
    except ValueError:
        since = None
    if since is None or timezone.is_naive(since):
        return timezone.now() - IN_FLIGHT_STALE_AFTER
    return since


def _send(claimed: _Claimed) -> _Attempt:
    """Phase 2 of `_deliver`: the provider call, outside any transaction. An unexpected
    error is an unknown outcome ("ambiguous")."""
    channel = claimed.channel
    try:
        result = sending_provider(channel).deliver(channel=channel, payload=claimed.payload)
    except TransientSendError as exc:
        return _Attempt(claimed, "transient", None, exc)
    except PermanentSendError as exc:
        return _Attempt(claimed, "permanent", None, exc)
    except AmbiguousSendError as exc:
        return _Attempt(claimed, "ambiguous", None, exc)
    except Exception as exc:  # noqa: BLE001 - an unexpected error: the outcome is unknown
        logger.exception("provider send raised", extra={"message_id": str(claimed.message.pk)})
        return _Attempt(claimed, "ambiguous", None, exc)
    return _Attempt(claimed, "sent", result, None)


def _record(attempts: list[_Attempt], *, outcomes: Counter[str], one_by_one: bool) -> None:
    """What the provider answered, counted in `outcomes`: the accepted messages first, in
    one statement (`_record_sent`), or with `one_by_one` each on its own
    (`_record_sent_one`); then each failure with its reason."""
    sent = [attempt for attempt in attempts if attempt.outcome == "sent"]
    if sent:
        _record_sent(sent, one_by_one=one_by_one)
        outcomes["sent"] += len(sent)
    for attempt in attempts:
        if attempt.outcome != "sent" and not _record_failure(attempt):
            outcomes["failed"] += 1


def _record_sent(sent: list[_Attempt], *, one_by_one: bool) -> None:
    """Record accepted messages as sent with their provider ids: in one statement, which the
    unique constraint refuses whole when the provider reused an id we already hold; or, with
    `one_by_one`, each on its own (`_record_sent_one`, which keeps such a message without
    the id)."""
    now = timezone.now()
    fields = {
        "status": MessageStatus.SENT,
        "sent_at": now,
        "sending_since": None,
        "error_code": "",
        "error_detail": "",
        "updated_at": now,
    }
    if one_by_one:
        for attempt in sent:
            _record_sent_one(attempt, fields)
        return
    id_field = Message._meta.get_field("provider_message_id")
    # Only what is still queued: a second try after a commit whose answer was lost changes
    # nothing.
    Message.objects.filter(
        pk__in=[a.claimed.message.pk for a in sent], status=MessageStatus.QUEUED
    ).update(
        provider_message_id=Case(
            *(
                When(
                    pk=attempt.claimed.message.pk,
                    then=Value(attempt.result.provider_message_id, output_field=id_field),
                )
                for attempt in sent
            ),
            output_field=id_field,
        ),
        **fields,
    )
    for attempt in sent:
        message = attempt.claimed.message
        for name, value in fields.items():
            setattr(message, name, value)
        message.provider_message_id = attempt.result.provider_message_id
        _sent(message)


def _record_sent_one(attempt: _Attempt, fields: dict[str, Any]) -> None:
    message = attempt.claimed.message
    for name, value in fields.items():
        setattr(message, name, value)
    message.provider_message_id = attempt.result.provider_message_id
    try:
        with transaction.atomic():
            message.save(update_fields=[*fields, "provider_message_id"])
    except IntegrityError:
        # The provider reused an id we already hold: the message did go out, so it is
        # recorded as sent (never retried) without the id, and the conflict is noted.
        fresh = Message.objects.get(pk=message.pk)
        message.metadata = {
            **(fresh.metadata or {}),
            "provider_id_conflict": provider_id_pseudonym(message.provider_message_id or ""),
        }
        message.provider_message_id = None
        message.save(update_fields=[*fields, "metadata"])
        logger.error(
            "provider returned an id already in use",
            extra={"message_id": str(message.pk), "attempt": message.send_attempts},
        )
    _sent(message)


def _sent(message: Message) -> None:
    """A message recorded as sent: logged, reported to the tenant's webhooks, and statuses
    that arrived before its provider id applied after commit."""
    logger.info(
        "message sent", extra={"message_id": str(message.pk), "attempt": message.send_attempts}
    )
    webhook_events.message_status(message)
    if message.provider_message_id:
        # robust: one message's early statuses failing never stops the others' (or the batch)
        transaction.on_commit(lambda: _apply_early_statuses(message), robust=True)


def _record_failure(attempt: _Attempt) -> bool:
    """Record a send that did not go out, under the message's row lock; True when it stays
    queued for a later attempt."""
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("thread")
        .get(pk=attempt.claimed.message.pk)
    )
    channel, error = attempt.claimed.channel, attempt.error
    log_extra = {"message_id": str(message.pk), "attempt": message.send_attempts}
    code = attempt.code
    metrics.send_failed(channel.provider, code)
    detail = (
        str(error)[:1000]
        if isinstance(error, TransientSendError | PermanentSendError | AmbiguousSendError)
        else ""
    )
    if attempt.retry:
        message.error_code = code[:64]
        message.error_detail = detail
        message.sending_since = None
        message.save(update_fields=["error_code", "error_detail", "sending_since", "updated_at"])
        attempt.claimed.message.error_code = message.error_code
        logger.warning("send failed, will retry", extra={**log_extra, "code": code})
        return True
    if attempt.outcome == "ambiguous":
        code = code if code not in ("", "timeout", "network") else "send_unconfirmed"
        detail = detail or "The provider's answer was lost; not repeated."
    _fail(message, code=code, detail=detail)
    logger.warning("send failed", extra={**log_extra, "code": code, "outcome": attempt.outcome})
    _apply_opt_out(message, provider=channel.provider, code=code)
    return False


def _apply_opt_out(message: Message, *, provider: str, code: str) -> bool:
    """Opt the message's contact out when `code` says the recipient unsubscribed or blocked
    the business (see channels_app.providers.outcomes); True when it did. Call inside the
    transaction that records the failure."""
    if outcome_of(provider=provider, code=code) is not Outcome.OPT_OUT:
        return False
    contact = Contact.objects.select_for_update().filter(pk=message.thread.contact_id).first()
    if contact is None:  # merged into another contact or erased meanwhile
        return False
    contact_opt_out(contact=contact, source=f"provider:{code}"[:50])
    logger.info(
        "contact opted out by the provider",
        extra={"message_id": str(message.pk), "contact_id": str(contact.pk), "code": code},
    )
    return True


def retry_delay(attempts: int) -> timedelta:
    """How long a message the provider asked us to slow down for waits before its next
    attempt: the send task's backoff (10 s, 30 s, 90 s, ... up to 15 minutes)."""
    from conversations.tasks import backoff_seconds

    return timedelta(seconds=backoff_seconds(max(attempts - 1, 0)))


def _requeue_rate_limited(message: Message, *, status: ParsedStatus) -> bool:
    """Put a message the provider failed with a `retry` code back in the queue, to be sent
    again after a backoff; False (nothing changed) once it has had MAX_SEND_ATTEMPTS attempts
    or when it was delivered or read already. The failed attempt's provider id is kept
    pseudonymised in `metadata["replaced_provider_ids"]` (the provider gives the next attempt
    a new id). Call holding the message's row lock."""
    if message.status not in (MessageStatus.QUEUED, MessageStatus.SENT):
        return False
    if message.send_attempts >= MAX_SEND_ATTEMPTS:
        return False
    if message.sender == Sender.BUSINESS or (message.metadata or {}).get("echo"):
        return False  # sent from the WhatsApp Business app: chatai never sends it again
    metadata = dict(message.metadata or {})
    replaced = list(metadata.get("replaced_provider_ids") or [])
    replaced.append(provider_id_pseudonym(message.provider_message_id or ""))
    metadata["replaced_provider_ids"] = replaced[-MAX_SEND_ATTEMPTS:]
    metadata["retry_after"] = (timezone.now() + retry_delay(message.send_attempts)).isoformat()
    message.metadata = metadata
    message.status = MessageStatus.QUEUED
    message.provider_message_id = None
    message.sent_at = None
    message.sending_since = None
    message.error_code = (status.error_code or status.raw_status)[:64]
    message.error_detail = status.error_detail[:1000]
    message.save(
        update_fields=[
            "metadata",
            "status",
            "provider_message_id",
            "sent_at",
            "sending_since",
            "error_code",
            "error_detail",
            "updated_at",
        ]
    )
    _schedule_send(message.thread)
    logger.warning(
        "provider rate-limited a message, will send again",
        extra={"message_id": str(message.pk), "code": message.error_code},
    )
    return True


EARLY_STATUS_SECONDS = 600
STATUS_KEPT = (
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
    MessageStatus.FAILED,
)


def provider_id_digest(provider_message_id: str) -> str:
    """What names a provider message id in a cache key (never the id itself): the same for
    the id as the provider sends it and as stored (pseudonymised)."""
    stored_form = provider_id_pseudonym(provider_message_id)
    return hashlib.sha256(stored_form.encode()).hexdigest()[:32]


def _early_status_keys(channel_id: object, provider_message_id: str) -> dict[str, str]:
    """One cache key per tracked status, so that two early callbacks never overwrite each
    other (a shared list would be a read-modify-write)."""
    digest = provider_id_digest(provider_message_id)
    return {status: f"status-early:{channel_id}:{digest}:{status}" for status in STATUS_KEPT}


def _apply_early_statuses(message: Message) -> None:
    """Apply statuses that arrived before `message`'s provider id was recorded. Call after
    that id is committed: a callback arriving meanwhile either sees the id or is kept where
    this finds it (it looks for the message again after keeping its status)."""
    keys = _early_status_keys(message.channel_id, message.provider_message_id or "")
    early = cache.get_many(list(keys.values()))
    if not early:
        return
    cache.delete_many(list(early))
    for status in early.values():
        message_status_update(channel=message.channel, status=status)


@transaction.atomic
def message_status_update(*, channel: ChannelInstance, status: ParsedStatus) -> Message | None:
    """Apply a provider status to our message with that provider id on the channel.

    Never moves a message backwards (queued < sent < delivered < read); `failed` may follow any
    state and records the provider's error code and reason. Missing earlier timestamps are
    filled in (a `read` arriving first also dates `delivered`, and a later `delivered` with an
    earlier time corrects it). An unknown id, or a status we
    do not track, changes nothing and returns None.

    A `failed` status is read through the provider outcome table
    (`channels_app.providers.outcomes`): a rate-limit code puts the message back in the queue
    to be sent again after a backoff (until MAX_SEND_ATTEMPTS), an unsubscribed-recipient code
    also opts the contact out (source `provider:<code>`); any other code fails it.
    """
    found = Message.objects.select_for_update().filter(
        channel=channel,
        provider_message_id=status.provider_message_id,
        direction=Direction.OUTBOUND,  # statuses are of our messages (an Instagram read names
        # whatever was read last, which may be the contact's own)
    )
    message = found.first()
    if message is None and status.status in STATUS_KEPT:
        # Possibly a callback that overtook the recording of the provider id (the provider
        # answers the send, then calls back at once): kept briefly, applied once recorded.
        # Then one more look, in case the id was committed (and the kept statuses applied)
        # since the first one: this status is then applied now, twice at worst, which
        # changes nothing the second time.
        key = _early_status_keys(channel.pk, status.provider_message_id)[status.status]
        cache.set(key, status, timeout=EARLY_STATUS_SECONDS)
        message = found.first()
    if message is None:
        logger.info(
            "status for an unknown message",
            extra={"channel_id": str(channel.pk), "status": status.raw_status},
        )
        return None
    if not status.status:
        return message
    at = status.timestamp or timezone.now()
    fields: set[str] = set()
    if status.status == MessageStatus.FAILED:
        outcome = outcome_of(provider=channel.provider, code=status.error_code)
        if outcome is Outcome.RETRY and _requeue_rate_limited(message, status=status):
            return message
        if message.status != MessageStatus.FAILED:
            message.status = MessageStatus.FAILED
            message.error_code = (status.error_code or status.raw_status)[:64]
            message.error_detail = status.error_detail[:1000]
            fields |= {"status", "error_code", "error_detail"}
            _apply_opt_out(message, provider=channel.provider, code=status.error_code)
    else:
        new_rank = STATUS_RANK[status.status]
        current_rank = STATUS_RANK.get(message.status, -1)
        if message.status != MessageStatus.FAILED and new_rank > current_rank:
            message.status = status.status
            fields.add("status")
        stamps = (("sent_at", 1), ("delivered_at", 2), ("read_at", 3))
        for field, rank in stamps:
            current = getattr(message, field)
            # a later status implies the earlier ones happened no later than it did
            if rank <= new_rank and (current is None or at < current):
                setattr(message, field, at)
                fields.add(field)
    if fields:
        message.save(update_fields=[*sorted(fields), "updated_at"])
        if "status" in fields:
            webhook_events.message_status(message)
    logger.info(
        "status applied",
        extra={"message_id": str(message.pk), "status": message.status, "changed": bool(fields)},
    )
    return message
