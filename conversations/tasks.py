"""Celery tasks of the conversation pipeline. The bodies are services; these add retries.

Without a broker they run in-process right after the transaction commits (core.tasks); a
transient failure then leaves the work recorded (unprocessed inbound, queued outbound) for
`process_pending` instead of blocking the request with a backoff sleep.
"""

import logging

from celery import shared_task

from conversations.services.inbound import thread_process_inbound
from conversations.services.outbound import (
    MAX_SEND_ATTEMPTS,
    TransientDeliveryError,
    thread_deliver_queued,
)
from core.tasks import scheduled_started

logger = logging.getLogger(__name__)


def backoff_seconds(retries: int) -> int:
    """10 s, 30 s, 90 s, 270 s, ... capped at 15 minutes."""
    return int(min(10 * 3**retries, 900))


def process_thread_key(thread_id: object) -> str:
    """The mark of a queued `process_thread` (one publish per thread until it starts)."""
    return f"process_thread:{thread_id}"


@shared_task(bind=True, max_retries=5, acks_late=True)
def process_thread(self, thread_id: str, tenant_id: str | None = None) -> int:  # type: ignore[no-untyped-def]
    """Run the flow on the thread's unprocessed inbound messages (see thread_process_inbound).

    `tenant_id` (the thread's, for log lines) saves a lookup; tasks queued without it work."""
    from django.db import DatabaseError

    scheduled_started(process_thread_key(thread_id))  # before reading: see enqueue_once
    try:
        return thread_process_inbound(thread_id=thread_id, tenant_id=tenant_id)
    except DatabaseError as exc:
        if self.request.is_eager:
            raise
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc


@shared_task(bind=True, max_retries=MAX_SEND_ATTEMPTS, acks_late=True)
def send_thread(self, thread_id: str, tenant_id: str | None = None) -> int:  # type: ignore[no-untyped-def]
    """Send the thread's queued replies in order (see thread_deliver_queued).

    On a transient provider error the rest waits: with a broker the task retries with backoff;
    in-process the messages stay queued for process_pending.
    """
    try:
        return thread_deliver_queued(thread_id=thread_id, tenant_id=tenant_id)["sent"]
    except TransientDeliveryError as exc:
        if self.request.is_eager:
            logger.info("send left for process_pending", extra={"thread_id": thread_id})
            return 0
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc


@shared_task(name="conversations.tasks.process_pending", ignore_result=True)
def process_pending() -> dict[str, int]:
    """Finish stale unprocessed inbound and stuck queued outbound (every minute by beat)."""
    from conversations.services.pending import pending_process

    return pending_process().as_dict()
