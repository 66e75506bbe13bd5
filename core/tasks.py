"""Scheduling work that leaves the request: Celery when a broker is configured, else in-process."""

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def run_task(task: Any, *args: Any, **kwargs: Any) -> None:
    """Run a Celery task now: queued when a broker is configured, in-process otherwise.

    A broker that cannot be reached is logged and swallowed: the work stays recorded in the
    database (unprocessed inbound, queued outbound) and `process_pending` finishes it later.
    """
    if settings.CELERY_BROKER_URL:
        try:
            task.apply_async(args=args, kwargs=kwargs, retry=False)
        except Exception as exc:  # noqa: BLE001 - kombu raises many transport errors
            logger.warning(
                "broker unavailable, task left for process_pending",
                extra={"task": task.name, "error": type(exc).__name__},
            )
        return
    try:
        task.apply(args=args, kwargs=kwargs)
    except Exception:
        logger.exception("in-process task failed", extra={"task": task.name})


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Schedule `task` to run after the current transaction commits (or now, outside one)."""
    transaction.on_commit(lambda: run_task(task, *args, **kwargs))
