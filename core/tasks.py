"""Scheduling work that leaves the request: Celery when a broker is configured, else in-process."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.cache import cache
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


def _to_broker() -> bool:
    return bool(settings.CELERY_BROKER_URL) and not _force_in_process.get()


def run_task(task: Any, *args: Any, **kwargs: Any) -> bool:
    """Run a Celery task now: queued when a broker is configured, in-process otherwise.
    Returns whether it was queued or ran.

    A broker that cannot be reached is logged and swallowed: the work stays recorded in the
    database (unprocessed inbound, queued outbound) and `process_pending` finishes it later.
    """
    if _to_broker():
        try:
            task.apply_async(args=args, kwargs=kwargs, retry=False)
        except Exception as exc:  # noqa: BLE001 - kombu raises many transport errors
            logger.warning(
                "broker unavailable, task left for process_pending",
                extra={"task": task.name, "error": type(exc).__name__},
            )
            return False
        return True
    result = task.apply(args=args, kwargs=kwargs)
    if result.failed():
        # The work stays recorded in the database; process_pending finishes it later.
        logger.error(
            "in-process task failed",
            extra={"task": task.name, "error": type(result.result).__name__},
        )
    return True


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Schedule `task` to run after the current transaction commits (or now, outside one)."""
    transaction.on_commit(lambda: run_task(task, *args, **kwargs))


# How long a "queued, not started" mark lives: past it a task still waiting in a long queue may
# be published once more (harmless: the second finds nothing left to do).
SCHEDULED_MARK_SECONDS = 60


def _scheduled_key(key: str) -> str:
    return f"chatai:scheduled:{key}"


def _marks_shared() -> bool:
    """Marks need a cache the web and the workers share (Redis); with a per-process cache a
    mark set by the web could never be cleared by the worker."""
    return _to_broker() and bool(settings.REDIS_URL)


def enqueue_once_on_commit(task: Any, key: str, *args: Any, **kwargs: Any) -> None:
    """Like `enqueue_on_commit`, but publish nothing while a task published under the same
    `key` is queued and has not started: that task will see this transaction's work.

    Why it is safe: the mark is set after commit, and the task clears it
    (`scheduled_started`) before it reads anything, so whatever committed before a refused
    publish is read by the queued task, and whatever commits after the task started
    publishes again. A failed publish removes its mark. The mark expires after
    SCHEDULED_MARK_SECONDS, so a lost task holds nothing back for long (and `process_pending`
    finishes what a lost task left)."""
    transaction.on_commit(lambda: _run_once(task, key, *args, **kwargs))


def _run_once(task: Any, key: str, *args: Any, **kwargs: Any) -> None:
    if not _marks_shared():
        run_task(task, *args, **kwargs)
        return
    mark = _scheduled_key(key)
    if not cache.add(mark, 1, SCHEDULED_MARK_SECONDS):
        return  # queued and not started: it will see this work
    if not run_task(task, *args, **kwargs):
        cache.delete(mark)


def scheduled_started(key: str) -> None:
    """Called by a task published with `enqueue_once_on_commit` before it reads anything
    (in-process runs set no mark and clear none)."""
    if _marks_shared():
        cache.delete(_scheduled_key(key))
