"""Finishing work that never finished: a crashed worker, a broker that was down.

Everything the pipeline must still do is visible in the database: inbound messages with no
`processed_at` and outbound messages still `queued`. `pending_process` picks up what is older
than a grace period (younger work is probably still in a task) and finishes it through the
same services as the normal path, so each piece is done exactly once however many runs (or
workers) overlap:

- inbound: `thread_process_inbound` locks the thread row and handles only messages that are
  still unprocessed, so a second caller finds nothing left;
- outbound: `message_deliver` claims the message in a committed transaction before calling
  the provider and never sends a message that is not queued or already has a provider id.
"""

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.db.models import Min
from django.utils import timezone

from conversations.models import Direction, Message, MessageStatus
from conversations.services.outbound import TransientDeliveryError, thread_deliver_queued
from conversations.services.process import thread_process_inbound

logger = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(seconds=60)
DEFAULT_LIMIT = 500


@dataclass
class PendingReport:
    threads: int = 0
    inbound_processed: int = 0
    thread_errors: int = 0
    outbound_sent: int = 0
    outbound_failed: int = 0
    outbound_skipped: int = 0
    outbound_retry_later: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _stale_threads(*, cutoff: datetime, limit: int) -> list[object]:
    """Threads with an inbound message unprocessed since before `cutoff`, oldest first."""
    rows = (
        Message.objects.filter(
            direction=Direction.INBOUND, processed_at__isnull=True, created_at__lt=cutoff
        )
        .values("thread_id")
        .annotate(oldest=Min("created_at"))
        .order_by("oldest")[:limit]
    )
    return [row["thread_id"] for row in rows]


def _stuck_outbound(*, cutoff: datetime, limit: int) -> list[tuple[object, object]]:
    """(message id, thread id) of outbound messages queued and untouched since `cutoff`."""
    return list(
        Message.objects.filter(
            direction=Direction.OUTBOUND, status=MessageStatus.QUEUED, updated_at__lt=cutoff
        )
        .order_by("created_at", "id")
        .values_list("id", "thread_id")[:limit]
    )


def _queued_count(thread_id: object) -> int:
    return Message.objects.filter(
        thread_id=thread_id, direction=Direction.OUTBOUND, status=MessageStatus.QUEUED
    ).count()


def pending_process(
    *,
    now: datetime | None = None,
    grace: timedelta = DEFAULT_GRACE,
    limit: int = DEFAULT_LIMIT,
) -> PendingReport:
    """Finish unprocessed inbound and stuck outbound messages older than `grace`.

    Inbound first (its replies are queued and, after commit, sent by the normal send task),
    then every thread with an outbound message stuck past `grace`: its whole queue goes out
    in order through the thread's own sender (`thread_deliver_queued`, under the thread's
    sender lock, so a worker sending it right now is never overtaken); when one message cannot
    be sent now (a transient provider error) the thread's later messages wait too. A
    database error on one thread is logged and the others still run. At most `limit` threads
    and `limit` outbound messages per run; the periodic task picks up the rest.
    """
    cutoff = (now or timezone.now()) - grace
    report = PendingReport()

    for thread_id in _stale_threads(cutoff=cutoff, limit=limit):
        report.threads += 1
        try:
            report.inbound_processed += thread_process_inbound(thread_id=thread_id)
        except DatabaseError:
            report.thread_errors += 1
            logger.exception(
                "pending: thread processing failed", extra={"thread_id": str(thread_id)}
            )

    stuck_threads: list[object] = []
    for _message_id, thread_id in _stuck_outbound(cutoff=cutoff, limit=limit):
        if thread_id not in stuck_threads:
            stuck_threads.append(thread_id)
    for thread_id in stuck_threads:
        # The thread's own sender: in order, under the thread's sender lock, so a worker
        # sending this thread right now is never overtaken (it is left to finish instead).
        try:
            outcomes = thread_deliver_queued(thread_id=thread_id)
        except TransientDeliveryError:
            # the thread's later messages wait behind this one, so order holds
            report.outbound_retry_later += _queued_count(thread_id)
            continue
        report.outbound_sent += outcomes["sent"]
        report.outbound_failed += outcomes["failed"]
        report.outbound_skipped += outcomes["skipped"] + outcomes["missing"]
        if outcomes["busy"]:
            report.outbound_retry_later += _queued_count(thread_id)

    if any(asdict(report).values()):
        logger.info("pending work finished", extra=report.as_dict())
    return report
