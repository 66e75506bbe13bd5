"""Scheduling work that leaves the request: Celery when a broker is configured, else in-process."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

_force_in_process: ContextVar[bool] = ContextVar("force_in_process", default=False)


@contextmanager
def in_process() -> Iterator[None]:
    """Run every task scheduled inside the block in this process, whatever the broker says
    (the simulator uses it so its replies never reach a worker that would really send them)."""
    token = _force_in_process.set(True)
    try:
        yield
    finally:
        _force_in_process.reset(token)


def run_task(task: Any, *args: Any, **kwargs: Any) -> None:
    """Run a Celery task now: queued when a broker is configured, in-process otherwise.

    A broker that cannot be reached is logged and swallowed: the work stays recorded in the
    database (unprocessed inbound, queued outbound) and `process_pending` finishes it later.
    """
    if settings.CELERY_BROKER_URL and not _force_in_process.get():
        try:
            task.apply_async(args=args, kwargs=kwargs, retry=False)
        except Exception as exc:  # noqa: BLE001 - kombu raises many transport errors
            logger.warning(
                "broker unavailable, task left for process_pending",
                extra={"task": task.name, "error": type(exc).__name__},
            )
        return
    result = task.apply(args=args, kwargs=kwargs)
    if result.failed():
        # The work stays recorded in the database; process_pending finishes it later.
        logger.error(
            "in-process task failed",
            extra={"task": task.name, "error": type(result.result).__name__},
        )


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Schedule `task` to run after the current transaction commits (or now, outside one)."""
    transaction.on_commit(lambda: run_task(task, *args, **kwargs))
