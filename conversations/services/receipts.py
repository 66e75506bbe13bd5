"""What a contact does to messages already stored: edits one they sent, takes one back
(unsends it), reads ours up to one. Instagram reports all three (`message_edit`,
`message.is_deleted`, `read`); each is idempotent (a redelivery changes nothing more)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from channels_app.models import ChannelInstance
from channels_app.providers.base import ParsedEdit, ParsedStatus
from conversations.models import Direction, Message, MessageAttachment, MessageStatus
from conversations.services.outbound import (
    EARLY_STATUS_SECONDS,
    message_status_update,
    provider_id_digest,
)
from conversations.services.privacy import stored_files_delete
from core.crypto import DecryptionError, decrypt_str, encrypt_str
from integrations import events as webhook_events

logger = logging.getLogger(__name__)

MAX_EDIT_TEXT = 4096
# Earlier messages one read receipt marks read at most (a conversation's unread tail is short).
MAX_READ_THROUGH = 200


@transaction.atomic
def message_edit_record(*, channel: ChannelInstance, edit: ParsedEdit) -> Message | None:
    """Apply a contact's edit or unsend to their inbound message with that provider id on
    the channel; None when there is no such message (not stored yet, or another channel's).

    An edit replaces the text (the previous one is not kept: the contact changed what they
    said) and records `metadata.edit_count`; an older edit than the one applied (a lower
    `num_edit`) changes nothing. An unsent message loses its text, its private content and
    its attachments (rows and stored files, as an erasure does) and is marked
    `metadata.unsent` (it stays in the thread, so the conversation still reads in order);
    no edit brings its text back. No flow runs again for either: the flow has answered the
    message as it was.

    Meta does not order its deliveries: an edit or unsend of a message not stored yet is
    kept (an unsend for EARLY_UNSEND_SECONDS, an edit for EARLY_EDIT_SECONDS; in the cache,
    named by a digest of the id, the text encrypted) and applied when the message is stored
    (`early_edits_apply`), so a later delivery of the message never brings back what the
    contact took back or changed."""
    found = Message.objects.select_for_update().filter(
        channel=channel,
        provider_message_id=edit.provider_message_id,
        direction=Direction.INBOUND,
        thread__contact__erased_at__isnull=True,  # an erasure is never undone by an edit
    )
    message = found.first()
    if message is None:
        # Possibly a delivery that overtook the message's: kept, then one more look, in
        # case the message was committed (and the kept edits looked for) since the first
        # one; it is then applied now, twice at worst, which changes nothing the second time.
        _early_edit_keep(channel=channel, edit=edit)
        message = found.first()
    if message is None:
        logger.info(
            "edit kept for a message not stored yet",
            extra={"channel_id": str(channel.pk), "unsent": edit.deleted},
        )
        return None
    _edit_apply(message, edit)
    return message


def _edit_apply(message: Message, edit: ParsedEdit) -> None:
    """The work of `message_edit_record` on the message; requires its row lock."""
    metadata = dict(message.metadata or {})
    if edit.deleted:
        if metadata.get("unsent"):
            return
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
        return
    if metadata.get("unsent") or edit.num_edit <= int(metadata.get("edit_count") or 0):
        return
    message.text = edit.text[:MAX_EDIT_TEXT]
    message.metadata = {**metadata, "edit_count": edit.num_edit}
    message.save(update_fields=["text", "metadata", "updated_at"])
    logger.info("message edited by the contact", extra={"message_id": str(message.pk)})


# How long an edit of a message not stored yet is kept for it (as early statuses; it holds
# the new text, encrypted).
EARLY_EDIT_SECONDS = EARLY_STATUS_SECONDS
# How long an unsend of a message not stored yet is kept (a mark without content): as long as
# Meta may still redeliver the message it deletes.
EARLY_UNSEND_SECONDS = 48 * 3600


def _early_edit_keys(channel_id: object, provider_message_id: str) -> tuple[str, str]:
    """The cache keys of an early unsend and of an early edit (apart, so that one never
    overwrites the other)."""
    base = f"edit-early:{channel_id}:{provider_id_digest(provider_message_id)}"
    return f"{base}:unsent", f"{base}:edit"


def _early_edit_keep(*, channel: ChannelInstance, edit: ParsedEdit) -> None:
    """Keep an edit or unsend that found no message. An unsend is a mark (no content); an
    edit keeps its count and its text, encrypted, and only when it is newer than an edit
    already kept (two early edits racing each other may keep the older: a rare loss of an
    edit, never of an unsend)."""
    unsent_key, edit_key = _early_edit_keys(channel.pk, edit.provider_message_id)
    if edit.deleted:
        cache.set(unsent_key, True, timeout=EARLY_UNSEND_SECONDS)
        return
    kept = cache.get(edit_key)
    if kept is None or int(kept[0]) < edit.num_edit:
        token = encrypt_str(edit.text[:MAX_EDIT_TEXT])
        cache.set(edit_key, (edit.num_edit, token), timeout=EARLY_EDIT_SECONDS)


def early_edits_apply(message: Message, *, committed: bool) -> bool:
    """Apply the edit and unsend kept for `message` (an inbound message just stored) by
    `message_edit_record`, through the same code; return whether anything was kept. The
    message object is brought up to date (text, content, metadata).

    Call it in the transaction that stores the message, so that it is committed already
    unsent (or edited), and again once that transaction has committed: an unsend arriving
    meanwhile either sees the message or is kept where this second look finds it (it looks
    for the message again after keeping). The second look (`committed`) deletes what it
    applied; the first leaves it (its transaction may still roll back, a duplicate's does,
    and the delivery that wins then needs it)."""
    unsent_key, edit_key = _early_edit_keys(message.channel_id, message.provider_message_id or "")
    kept = cache.get_many([unsent_key, edit_key])
    if not kept:
        return False
    mid = message.provider_message_id or ""
    edits: list[ParsedEdit] = []
    if unsent_key in kept:
        edits.append(ParsedEdit(provider_message_id=mid, deleted=True))
    elif edit_key in kept:
        count, token = kept[edit_key]
        try:
            text = decrypt_str(token)
        except DecryptionError:  # kept under a key since rotated away: the edit is lost
            text = None
        if text is not None:
            edits.append(ParsedEdit(provider_message_id=mid, text=text, num_edit=int(count)))
    with transaction.atomic():
        locked = (
            Message.objects.select_for_update(of=("self",))  # not the thread's or contact's
            .filter(
                pk=message.pk,
                direction=Direction.INBOUND,
                thread__contact__erased_at__isnull=True,
            )
            .first()
        )
        if locked is not None:
            for edit in edits:
                _edit_apply(locked, edit)
            message.text, message.private_data, message.metadata = (
                locked.text,
                locked.private_data,
                locked.metadata,
            )
    if committed:
        cache.delete_many(list(kept))
    logger.info(
        "edits kept for a message applied",
        extra={"message_id": str(message.pk), "unsent": unsent_key in kept},
    )
    return True


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
