"""Media downloads (fetched after the message is stored, never holding it back), the
sandbox's statuses, and the periodic sync of message templates."""

from celery import shared_task

from channels_app.providers import MediaDownloadError
from conversations.services.inbound import MAX_DOWNLOAD_ATTEMPTS, attachment_download


@shared_task(bind=True, max_retries=MAX_DOWNLOAD_ATTEMPTS - 1, acks_late=True)
def download_attachment(self, attachment_id: str) -> str:  # type: ignore[no-untyped-def]
    """Store an attachment's media; retried with backoff, `failed` after the last attempt.

    In-process (no broker) the attempts run back to back: a media URL that is down now is
    down a second later too, so the result is recorded quickly and the request moves on.
    """
    final = self.request.retries >= self.max_retries
    try:
        return attachment_download(attachment_id=attachment_id, final_attempt=final)
    except MediaDownloadError as exc:
        raise self.retry(exc=exc, countdown=min(30 * 2**self.request.retries, 1800)) from exc


@shared_task(name="channels_app.tasks.advance_sandbox_statuses", ignore_result=True)
def advance_sandbox_statuses() -> int:
    """Sandbox channels' delivered/read statuses (every second by the schedule, where the
    sandbox is enabled; see channels_app.sandbox)."""
    from channels_app.sandbox import sandbox_statuses_advance

    return sandbox_statuses_advance()


@shared_task(name="channels_app.tasks.sync_templates", ignore_result=True)
def sync_templates() -> dict[str, int]:
    """Every active channel's message templates from its provider (every
    TEMPLATES_SYNC_SECONDS by the schedule; see channels_app.templates)."""
    from channels_app.templates import templates_sync_all

    return templates_sync_all()
