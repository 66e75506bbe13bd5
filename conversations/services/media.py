"""Media of inbound messages: fetched from the provider into default storage after the message
is stored (the `download_attachment` task), never holding the message back."""

from __future__ import annotations

import logging
import mimetypes

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Q
from django.utils import timezone

from channels_app.providers import MediaDownloadError, get_provider
from conversations.models import MessageAttachment
from core.context import tenant_bound

logger = logging.getLogger(__name__)

MAX_DOWNLOAD_ATTEMPTS = 5


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
