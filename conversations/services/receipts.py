"""What a contact does to messages already stored: edits one they sent, takes one back
(unsends it), reads ours up to one. Instagram reports all three (`message_edit`,
`message.is_deleted`, `read`); each is idempotent (a redelivery changes nothing more)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from channels_app.models import ChannelInstance
from channels_app.providers.base import ParsedEdit, ParsedStatus
from conversations.models import Direction, Message, MessageAttachment, MessageStatus
from conversations.services.outbound import message_status_update
from conversations.services.privacy import stored_files_delete
from integrations import events as webhook_events

logger = logging.getLogger(__name__)

MAX_EDIT_TEXT = 4096
# Earlier messages one read receipt marks read at most (a conversation's unread tail is short).
MAX_READ_THROUGH = 200


@transaction.atomic
def message_edit_record(*, channel: ChannelInstance, edit: ParsedEdit) -> Message | None:
    """Apply a contact's edit or unsend to their inbound message with that provider id on
    the channel; None when there is no such message (never stored, or another channel's).

    An edit replaces the text (the previous one is not kept: the contact changed what they
    said) and records `metadata.edit_count`; an older edit than the one applied (a lower
    `num_edit`) changes nothing. An unsent message loses its text, its private content and
    its attachments (rows and stored files, as an erasure does) and is marked
    `metadata.unsent` (it stays in the thread, so the
    conversation still reads in order). No flow runs again for either: the flow has answered
    the message as it was."""
    message = (
        Message.objects.select_for_update()
        .filter(
            channel=channel,
            provider_message_id=edit.provider_message_id,
            direction=Direction.INBOUND,
            thread__contact__erased_at__isnull=True,  # an erasure is never undone by an edit
        )
        .first()
    )
    if message is None:
        logger.info("edit for an unknown message", extra={"channel_id": str(channel.pk)})
        return None
    metadata = dict(message.metadata or {})
    if edit.deleted:
        if metadata.get("unsent"):
            return message
        message.text = ""
        message.private_data = {}
        message.metadata = {**metadata, "unsent": True}
        message.save(update_fields=["text", "private_data", "metadata", "updated_at"])
        attachments = MessageAttachment.all_objects.filter(message=message)
        names = [name for name in attachments.values_list("file", flat=True) if name]
        attachments.delete()
        if names:
            contact_id = str(message.thread.contact_id)
            transaction.on_commit(lambda: stored_files_delete(names, contact_id=contact_id))
        logger.info("message unsent by the contact", extra={"message_id": str(message.pk)})
        return message
    if metadata.get("unsent") or edit.num_edit <= int(metadata.get("edit_count") or 0):
        return message
    message.text = edit.text[:MAX_EDIT_TEXT]
    message.metadata = {**metadata, "edit_count": edit.num_edit}
    message.save(update_fields=["text", "metadata", "updated_at"])
    logger.info("message edited by the contact", extra={"message_id": str(message.pk)})
    return message


@transaction.atomic
def messages_read_through(*, channel: ChannelInstance, status: ParsedStatus) -> int:
    """The contact read our message with this provider id (Instagram names the latest
    message read): it is marked read (`message_status_update`), and so are our earlier
    messages of the same thread that were sent or delivered (each announced to the tenant's
    webhook endpoints, as any status change is). Returns how many changed."""
    message = message_status_update(channel=channel, status=status)
    if message is None or message.direction != Direction.OUTBOUND:
        return 0
    at: datetime = status.timestamp or timezone.now()
    now = timezone.now()
    earlier = list(
        Message.objects.select_for_update()
        .filter(
            thread_id=message.thread_id,
            direction=Direction.OUTBOUND,
            status__in=(MessageStatus.SENT, MessageStatus.DELIVERED),
            created_at__lt=message.created_at,
        )
        .exclude(pk=message.pk)
        .order_by("created_at")[:MAX_READ_THROUGH]
    )
    for item in earlier:
        item.status, item.read_at, item.updated_at = MessageStatus.READ, at, now
    Message.objects.bulk_update(earlier, ["status", "read_at", "updated_at"])
    for item in earlier:
        webhook_events.message_status(item)
    return len(earlier) + 1
