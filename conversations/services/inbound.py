"""Storing provider deliveries: the first step of the message pipeline.

Receiving is split in two so that the webhook answers fast and every message is handled once:

1. `message_receive` (here) stores the message in one short transaction (one statement on
   PostgreSQL; duplicates hit the unique (channel, provider_message_id) constraint and change
   nothing) and schedules processing and media downloads after commit.
2. `conversations.services.process.thread_process_inbound` runs the automation on a thread's
   unprocessed inbound messages, one thread at a time and in order, under a row lock on the
   thread.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from channels_app.models import ChannelInstance
from channels_app.providers import (
    ParsedEcho,
    ParsedInbound,
    ParsedMedia,
    provider_for_code,
)
from conversations.models import (
    ChatThread,
    Contact,
    Direction,
    Message,
    MessageAttachment,
    MessageStatus,
    Sender,
    ThreadStatus,
)
from conversations.services import inbound_pg
from conversations.services.contacts import (
    contact_external_id,
    contact_rename,
    contact_thread_for_inbound,
)
from conversations.services.receipts import early_edits_apply
from core import locks, metrics
from core.crypto import (
    normalize_ig_user_id,
    normalize_phone,
    normalize_wa_user_id,
    phone_lookup,
    provider_id_pseudonym,
)
from core.tasks import enqueue_on_commit, enqueue_once_on_commit
from integrations import events as webhook_events

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger(__name__)


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

    On a channel whose provider reports edits and unsends (`Provider.reports_edits`), one
    that arrived before the message (kept by `message_edit_record`) is applied in the
    storing transaction, so the message is stored already unsent or edited, and looked for
    once more after commit, before processing is scheduled (`early_edits_apply`). A message
    stored unsent runs no flow (`message_automate`).
    """
    phone = normalize_phone(inbound.from_phone)
    user_id = normalize_wa_user_id(inbound.from_user_id)
    ig_user_id = normalize_ig_user_id(inbound.from_ig_user_id)  # Instagram: the only identity
    if not phone and not user_id and not ig_user_id:
        raise ValueError("A contact needs a phone number or a WhatsApp user id.")
    inbound = replace(inbound, from_phone=phone, from_user_id=user_id, from_ig_user_id=ig_user_id)
    message = _new_message(channel=channel, inbound=inbound)
    edits = _reports_edits(channel)
    # The one-statement path finds contacts by phone only; a message with a user id may have
    # to link or merge contacts, and an Instagram id has its own index: the ORM path.
    # A channel whose provider reports edits stores through the ORM too, which looks for an
    # edit or unsend that came first.
    if (
        connection.vendor == "postgresql"
        and not inbound.media
        and not user_id
        and not ig_user_id
        and not edits
    ):
        created = _store_in_one_statement(
            channel=channel, inbound=inbound, phone=phone, message=message
        )
        attachments: list[MessageAttachment] = []
    else:
        created, attachments = _store_with_orm(
            channel=channel, inbound=inbound, phone=phone, message=message, edits=edits
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

    from conversations import tasks

    if edits:
        # Registered first: runs before processing and the tenant's event see the message.
        # robust: a failure here never stops the message being processed.
        transaction.on_commit(lambda: early_edits_apply(message, committed=True), robust=True)
    enqueue_once_on_commit(
        tasks.process_thread,
        tasks.process_thread_key(message.thread_id),
        str(message.thread_id),
        tenant_id=str(channel.tenant_id),
    )
    for attachment in attachments:
        enqueue_on_commit(tasks.download_attachment, str(attachment.pk))
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


def _reports_edits(channel: ChannelInstance) -> bool:
    """Whether the channel's provider reports edits and unsends (so that one may be waiting
    for a message in the cache); the others pay no cache read."""
    try:
        return provider_for_code(channel.provider).reports_edits
    except LookupError:
        return False


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
    *,
    channel: ChannelInstance,
    inbound: ParsedInbound,
    phone: str,
    message: Message,
    edits: bool = False,
) -> tuple[bool, list[MessageAttachment]]:
    """Any database: the same work as `_store_in_one_statement` in one transaction, plus the
    message's attachments, and with `edits` the edit or unsend that came before it.
    Returns whether the message was stored now, and its attachments (none once unsent)."""
    thread, _ = contact_thread_for_inbound(
        channel=channel,
        phone=phone,
        user_id=inbound.from_user_id,
        name=inbound.profile_name,
        external_id=inbound.wa_id,
        inbound_at=timezone.now(),
        ig_user_id=inbound.from_ig_user_id,
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
    attachments = _attachments_store(message=message, media=inbound.media)
    if edits and early_edits_apply(message, committed=False) and message.metadata.get("unsent"):
        return True, []
    return True, attachments


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
    from conversations import tasks

    for attachment in attachments:
        enqueue_on_commit(tasks.download_attachment, str(attachment.pk))
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
