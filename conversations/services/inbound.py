"""Storing provider deliveries and running the flow on them.

Receiving is split in two so that the webhook answers fast and every message is handled once:

1. `message_receive` stores the message in one short transaction (one statement on
   PostgreSQL; duplicates hit the unique (channel, provider_message_id) constraint and change
   nothing) and schedules processing and media downloads after commit.
2. `thread_process_inbound` runs the flow on a thread's unprocessed inbound messages, one
   thread at a time and in order, under a row lock on the thread.
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from channels_app.models import ChannelInstance
from channels_app.providers import (
    MediaDownloadError,
    ParsedEcho,
    ParsedInbound,
    ParsedMedia,
    get_provider,
)
from conversations.models import (
    ChatThread,
    Contact,
    Direction,
    HandoffSource,
    Message,
    MessageAttachment,
    MessageStatus,
    Sender,
    ThreadStatus,
)
from conversations.selectors import thread_tenant_id
from conversations.services import inbound_pg
from conversations.services.contacts import (
    contact_external_id,
    contact_rename,
    contact_thread_for_inbound,
)
from core import locks, metrics
from core.context import tenant_bound
from core.crypto import (
    normalize_phone,
    normalize_wa_user_id,
    phone_lookup,
    provider_id_pseudonym,
)
from core.tasks import enqueue_on_commit, enqueue_once_on_commit
from flows.engine import AIAnswerNeeded
from integrations import events as webhook_events

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger(__name__)


MAX_DOWNLOAD_ATTEMPTS = 5


def _metadata(inbound: ParsedInbound) -> dict[str, object]:
    metadata: dict[str, object] = {"provider_type": inbound.raw_type or inbound.kind}
    if inbound.interactive_id:
        metadata["interactive_id"] = inbound.interactive_id
    if inbound.timestamp is not None:
        metadata["provider_timestamp"] = inbound.timestamp.isoformat()
    if inbound.context_id:
        metadata["context_id"] = provider_id_pseudonym(inbound.context_id)
    return metadata


def _private_data(inbound: ParsedInbound | ParsedEcho) -> dict[str, object]:
    """A message's structured content, stored encrypted: where a contact is (a shared
    location), the contact cards they shared, a WhatsApp Flow's answers, a reaction, an order,
    the ad they came from (`referral`). All of it may be personal; none of it is in clear."""
    data: dict[str, object] = dict(inbound.content)
    location = getattr(inbound, "location", None)
    if location is not None:
        data["location"] = {
            "latitude": location.latitude,
            "longitude": location.longitude,
            "name": location.name,
            "address": location.address,
        }
    return data


def message_receive(*, channel: ChannelInstance, inbound: ParsedInbound) -> tuple[Message, bool]:
    """Store an inbound message once; return it and whether this call created it.

    Guarantees: a delivery of a provider message id already stored on this channel changes
    nothing and schedules nothing (the unique (channel, provider_message_id) constraint
    decides, so concurrent duplicates are safe too). Messages of one thread commit in the
    order of their `created_at` (a per-thread advisory lock is held from the moment a
    message takes its time until it commits). A new message gets its
    contact (found by blind index; a changed profile name replaces the stored one), its thread
    and its attachments; processing and media downloads are scheduled after commit. The
    thread itself is not written here (a flow may hold its row lock for a model call, and the
    webhook must not wait): `thread_process_inbound` reopens it and records its last inbound
    and activity times, and the 24-hour window also reads the latest inbound message, so
    nothing depends on those fields before processing. The contact is found by phone and/or
    WhatsApp user id, and linked or merged when the message names both
    (`contact_get_or_create`). Raises ValueError for a sender with neither a valid phone
    number nor a valid WhatsApp user id (the webhook answers 400).

    On PostgreSQL a message from a phone alone, without media, is stored with one round trip
    (`inbound_pg`); media, a sender with a user id (which may need linking or merging), and
    other databases take the ORM path with the same guarantees in one transaction.
    """
    phone = normalize_phone(inbound.from_phone)
    user_id = normalize_wa_user_id(inbound.from_user_id)
    if not phone and not user_id:
        raise ValueError("A contact needs a phone number or a WhatsApp user id.")
    inbound = replace(inbound, from_phone=phone, from_user_id=user_id)
    message = _new_message(channel=channel, inbound=inbound)
    # The one-statement path finds contacts by phone only; a message with a user id may have
    # to link or merge contacts, which the ORM path does.
    if connection.vendor == "postgresql" and not inbound.media and not user_id:
        created = _store_in_one_statement(
            channel=channel, inbound=inbound, phone=phone, message=message
        )
        attachments: list[MessageAttachment] = []
    else:
        created, attachments = _store_with_orm(
            channel=channel, inbound=inbound, phone=phone, message=message
        )
    if not created:
        # all_objects: the unique constraint also counts a soft-deleted message
        existing = Message.all_objects.get(
            channel=channel, provider_message_id=inbound.provider_message_id
        )
        logger.info(
            "duplicate delivery ignored",
            extra={"message_id": str(existing.pk), "channel_id": str(channel.pk)},
        )
        return existing, False

    from channels_app import tasks as channel_tasks
    from conversations import tasks

    enqueue_once_on_commit(
        tasks.process_thread,
        tasks.process_thread_key(message.thread_id),
        str(message.thread_id),
        tenant_id=str(channel.tenant_id),
    )
    for attachment in attachments:
        enqueue_on_commit(channel_tasks.download_attachment, str(attachment.pk))
    webhook_events.message_received(message)  # after the flow's turn: a receiver never delays it
    metrics.message_received(channel.provider)
    logger.info(
        "inbound message stored",
        extra={
            "message_id": str(message.pk),
            "thread_id": str(message.thread_id),
            "channel_id": str(channel.pk),
            "kind": inbound.kind,
            "attachments": len(attachments),
        },
    )
    return message, True


def _new_message(*, channel: ChannelInstance, inbound: ParsedInbound) -> Message:
    return Message(
        tenant_id=channel.tenant_id,
        channel=channel,
        direction=Direction.INBOUND,
        kind=inbound.kind,
        text=inbound.text[:4096],
        status=MessageStatus.RECEIVED,
        provider_message_id=inbound.provider_message_id,
        sender=Sender.CONTACT,
        metadata=_metadata(inbound),
        private_data=_private_data(inbound),
    )


def _store_in_one_statement(
    *, channel: ChannelInstance, inbound: ParsedInbound, phone: str, message: Message
) -> bool:
    """PostgreSQL: contact, thread and message found or created by one statement. Returns
    whether the message was stored now (False: a duplicate). Requires a message without
    media (attachments are rows of their own)."""
    now = timezone.now()
    contact = Contact(
        tenant_id=channel.tenant_id,
        phone=phone,
        phone_lookup=phone_lookup(phone),
        name=inbound.profile_name,
        external_id=contact_external_id(inbound.wa_id or phone),
    )
    thread = ChatThread(
        tenant_id=channel.tenant_id,
        channel=channel,
        status=ThreadStatus.OPEN,
        last_activity_at=now,
        last_inbound_at=now,
    )
    outcome = inbound_pg.message_store(contact=contact, thread=thread, message=message)
    if outcome.stored_id is None:
        return False
    message.thread_id = outcome.in_thread
    message.created_at = message.updated_at = outcome.stored_at
    message._state.adding = False
    message._state.db = connection.alias
    if outcome.stored_name is not None and inbound.profile_name:
        stored = Contact._meta.get_field("name").from_db_value(
            outcome.stored_name, None, connection
        )
        if stored != inbound.profile_name:
            contact_rename(contact_id=outcome.of_contact, name=inbound.profile_name)
    return True


def _database_now() -> datetime:
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        now: datetime = cursor.fetchone()[0]
    return now


@transaction.atomic
def _store_with_orm(
    *, channel: ChannelInstance, inbound: ParsedInbound, phone: str, message: Message
) -> tuple[bool, list[MessageAttachment]]:
    """Any database: the same work as `_store_in_one_statement` in one transaction, plus the
    message's attachments. Returns whether the message was stored now, and its attachments."""
    thread, _ = contact_thread_for_inbound(
        channel=channel,
        phone=phone,
        user_id=inbound.from_user_id,
        name=inbound.profile_name,
        external_id=inbound.wa_id,
        inbound_at=timezone.now(),
    )
    # Held until commit, taken before the message's time: the thread's messages commit in the
    # order of their created_at (processing reads them in that order).
    locks.advisory_xact_lock(locks.THREAD_INSERT_ORDER, thread.pk)
    message.thread = thread
    # The database's clock, as the one-statement path uses: with two clocks, a skew between
    # this host and the database could order a thread's messages against their commits.
    message.created_at = message.updated_at = _database_now()
    try:
        with transaction.atomic():
            message.save(force_insert=True)
    except IntegrityError:
        # A duplicate id from another sender must not leave the contact/thread it created.
        transaction.set_rollback(True)
        return False, []
    return True, _attachments_store(message=message, media=inbound.media)


def _attachments_store(
    *, message: Message, media: Sequence[ParsedMedia]
) -> list[MessageAttachment]:
    """The message's attachment rows (downloaded later, by a task scheduled after commit)."""
    attachments = [
        MessageAttachment(
            message=message,
            media_type=item.media_type,
            content_type=item.content_type[:100],
            url=item.url[:2000],
            provider_media_id=item.provider_media_id[:128],
            size_bytes=item.size_bytes,
            metadata={k: v for k, v in (("filename", item.filename), ("sha256", item.sha256)) if v},
        )
        for item in media
    ]
    if attachments:
        MessageAttachment.objects.bulk_create(attachments)
    return attachments


ECHO_HANDOFF_REASON = "business_app"


def message_echo_record(*, channel: ChannelInstance, echo: ParsedEcho) -> tuple[Message, bool]:
    """Record a message the business sent from the WhatsApp Business app on this number
    (coexistence) as an outbound message of the contact's thread, sent by `business`; return
    it and whether this call stored it.

    Guarantees: stored once per provider message id (a redelivery, even a concurrent one,
    changes nothing: the unique (channel, provider_message_id) constraint decides and the
    loser keeps nothing, contact and thread included); the contact and thread are found or
    created as for an inbound message; a person answering from the app is a human reply, so
    the thread is handed to a human (`needs_human`, reason `business_app`, a waiting flow
    session interrupted) until someone resumes automation. No flow runs for an echo. Raises
    ValueError without a valid recipient.
    """
    existing = _stored(channel, echo.provider_message_id)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            message = _echo_store(channel=channel, echo=echo)
            attachments = _attachments_store(message=message, media=echo.media)
    except IntegrityError:
        existing = _stored(channel, echo.provider_message_id)
        if existing is None:
            raise
        return existing, False
    from channels_app import tasks as channel_tasks

    for attachment in attachments:
        enqueue_on_commit(channel_tasks.download_attachment, str(attachment.pk))
    metrics.message_echoed()
    logger.info(
        "business app echo stored",
        extra={
            "message_id": str(message.pk),
            "thread_id": str(message.thread_id),
            "channel_id": str(channel.pk),
            "kind": echo.kind,
        },
    )
    return message, True


def _stored(channel: ChannelInstance, provider_message_id: str) -> Message | None:
    """The message already stored with this provider id on the channel (soft-deleted too)."""
    existing = Message.all_objects.filter(
        channel=channel, provider_message_id=provider_message_id
    ).first()
    if existing is not None:
        logger.info(
            "duplicate delivery ignored",
            extra={"message_id": str(existing.pk), "channel_id": str(channel.pk)},
        )
    return existing


def _echo_store(*, channel: ChannelInstance, echo: ParsedEcho) -> Message:
    """The work of `message_echo_record`; requires a transaction (it is all undone when the
    insert meets a concurrent duplicate)."""
    from conversations.services.handoffs import handoff_first_reply
    from conversations.services.threads import thread_update

    thread, _ = contact_thread_for_inbound(
        channel=channel,
        phone=echo.to_phone,
        user_id=echo.to_user_id,
        external_id=echo.to_phone or echo.to_user_id,
    )
    sent_at = echo.timestamp or timezone.now()
    message = Message.objects.create(
        tenant_id=channel.tenant_id,
        channel=channel,
        thread=thread,
        direction=Direction.OUTBOUND,
        kind=echo.kind,
        text=echo.text[:4096],
        status=MessageStatus.SENT,
        provider_message_id=echo.provider_message_id,
        sender=Sender.BUSINESS,
        sent_at=sent_at,
        metadata={"provider_type": echo.raw_type or echo.kind, "echo": True},
        private_data=_private_data(echo),
    )
    ChatThread.objects.filter(
        Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=sent_at), pk=thread.pk
    ).update(last_activity_at=sent_at, updated_at=timezone.now())
    if not thread.needs_human:
        thread_update(thread=thread, needs_human=True)
        ChatThread.objects.filter(pk=thread.pk).update(handoff_reason=ECHO_HANDOFF_REASON)
    # A person answered from the app: the wait for a human (if one was running) is answered.
    handoff_first_reply(thread_id=thread.pk, now=timezone.now())
    return message


MAX_MODEL_ROUNDS = 5


def thread_process_inbound(*, thread_id: object, tenant_id: object | None = None) -> int:
    """Run the flow on the thread's unprocessed inbound messages; return how many it handled.

    Guarantees: per thread, one caller at a time (a SELECT ... FOR UPDATE on the thread row for
    each transaction, and on PostgreSQL a session-level advisory lock for the whole run, so a
    second worker leaves the thread to the first) and messages in arrival order (created_at,
    id). Each message's replies are stored and `processed_at` is set in the same transaction,
    so a message is handled exactly once; sending happens after commit. A language model is
    never called inside a transaction: a step that needs one is rolled back, the model is
    called with the prompt built in the transaction, and the step runs again with the answer
    (the messages before it are committed first, the ones after it wait). A missing or
    deleted thread handles nothing. Log lines of the run carry the thread's tenant
    (`tenant_id` when the caller knows it, else looked up).
    """
    with tenant_bound(tenant_id or thread_tenant_id(thread_id=thread_id)):
        return _thread_process_inbound(thread_id=thread_id)


def _thread_process_inbound(*, thread_id: object) -> int:
    handled = 0
    # Model answers live for the whole run, so that looking again after a burst never asks
    # the model a second time for a message it already answered.
    answers: dict[tuple[object, ...], object] = {}
    while True:
        with locks.try_advisory_lock(locks.THREAD_PROCESSOR, thread_id) as acquired:
            if not acquired:
                return handled  # the holder looks again after letting go
            progress = _process_rounds(thread_id=thread_id, answers=answers)
        handled += progress
        if not _has_unprocessed(thread_id):
            return handled
        if not progress:
            # The first pending message still wants a model answer after MAX_MODEL_ROUNDS
            # calls (its prompt keeps changing): leave it to process_pending, do not spin.
            logger.warning(
                "model answers kept changing; the rest is left for process_pending",
                extra={"thread_id": str(thread_id)},
            )
            return handled


def _has_unprocessed(thread_id: object) -> bool:
    return Message.objects.filter(
        thread_id=thread_id, direction=Direction.INBOUND, processed_at__isnull=True
    ).exists()


def _process_rounds(*, thread_id: object, answers: dict[tuple[object, ...], object]) -> int:
    """Process until nothing is pending; each round ends at a model call or when done. At most
    MAX_MODEL_ROUNDS model calls, then one more round with the answers gathered; the caller
    looks again (keeping `answers`) while messages remain."""
    from flows.ai import answer_needed

    handled = 0
    for _ in range(MAX_MODEL_ROUNDS):
        count, needed = _process_round(thread_id=thread_id, answers=answers)
        handled += count
        if needed is None:
            return handled
        # Outside any transaction: the model may take up to LLM_TIMEOUT_SECONDS.
        key, outcome = answer_needed(needed, log_extra={"thread_id": str(thread_id)})
        answers[key] = outcome
    count, _needed = _process_round(thread_id=thread_id, answers=answers)
    return handled + count


def _process_round(
    *, thread_id: object, answers: dict[tuple[object, ...], object]
) -> tuple[int, AIAnswerNeeded | None]:
    """One transaction under the thread row lock: the pending messages in order, up to the
    first that needs a model answer not in `answers` (returned, with nothing of it kept)."""
    from conversations.services.outbound import replies_store
    from flows.services import flow_handle_inbound

    needed: AIAnswerNeeded | None = None
    with transaction.atomic():
        thread = (
            ChatThread.objects.select_for_update(of=("self",))
            .select_related("contact", "channel", "tenant")
            .filter(pk=thread_id)
            .first()
        )
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
                    was_opted_out = thread.contact.is_opted_out
                    replies = flow_handle_inbound(
                        thread=thread, message=message, ai_answers=answers
                    )
                    # The confirmation of an opt-out keyword is the one message an opted-out
                    # contact still gets.
                    just_opted_out = thread.contact.is_opted_out and not was_opted_out
                    replies_store(
                        thread=thread,
                        replies=replies,
                        consent_notice=just_opted_out,
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
            from conversations.services.handoffs import handoff_start

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


def attachment_download(*, attachment_id: object, final_attempt: bool = False) -> str:
    """Fetch an attachment's media into default storage; return its download status.

    Raises MediaDownloadError (for the task to retry) unless this is the final attempt or the
    error cannot be retried, which records `download_status = "failed"` instead. A stored
    attachment is never fetched again. The message itself never waits for this: the flow
    already ran on it.
    """
    attachment = (
        MessageAttachment.objects.select_related("message__channel")
        .filter(pk=attachment_id)
        .first()
    )
    if attachment is None or attachment.download_status == "stored":
        return "missing" if attachment is None else "stored"
    with tenant_bound(attachment.message.tenant_id):
        return _attachment_fetch(attachment, final_attempt=final_attempt)


def _attachment_fetch(attachment: MessageAttachment, *, final_attempt: bool) -> str:
    channel = attachment.message.channel
    MessageAttachment.objects.filter(pk=attachment.pk).update(
        download_attempts=attachment.download_attempts + 1
    )
    try:
        media = get_provider(channel).fetch_media(
            channel=channel, url=attachment.url, media_id=attachment.provider_media_id
        )
    except MediaDownloadError as exc:
        logger.warning(
            "media download failed",
            extra={"attachment_id": str(attachment.pk), "code": exc.code, "final": final_attempt},
        )
        if final_attempt or not exc.retryable:
            MessageAttachment.objects.filter(pk=attachment.pk).update(
                download_status="failed", updated_at=timezone.now()
            )
            return "failed"
        raise
    content_type = (media.content_type or attachment.content_type).split(";")[0].strip()
    extension = mimetypes.guess_extension(content_type) or ""
    name = default_storage.save(
        f"attachments/{attachment.message.tenant_id}/{attachment.pk}{extension}",
        ContentFile(media.content),
    )
    updated = MessageAttachment.objects.filter(
        ~Q(download_status="stored"), pk=attachment.pk
    ).update(
        file=name,
        size_bytes=len(media.content),
        content_type=content_type[:100],
        download_status="stored",
        updated_at=timezone.now(),
    )
    if not updated:  # another worker stored it meanwhile
        default_storage.delete(name)
    logger.info(
        "media stored", extra={"attachment_id": str(attachment.pk), "size": len(media.content)}
    )
    return "stored"
