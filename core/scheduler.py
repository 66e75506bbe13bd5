"""The periodic jobs of the embedded default, run in the server process.

With `CELERY_BROKER_URL` set, Celery beat runs `CELERY_BEAT_SCHEDULE` and nothing here starts.
Without a broker (`make run`) nobody would: a flow's question would never time out and a send
that failed on the network would stay queued. So a server process (the WSGI/ASGI application
module, loaded by `runserver`'s serving process and by each gunicorn worker) starts one daemon
thread that runs the same schedule: the same task functions, at the same intervals, except where
`EMBEDDED_SCHEDULE_SECONDS` shortens one (flow timeouts every 2 s, so a question's timeout
fires within about 2 seconds of its due time).

A small loop rather than APScheduler: the jobs are a handful of fixed intervals read from the
beat schedule, a test drives one tick synchronously (`Scheduler.run_due`), and a job's error is
logged by type only (a library's own log line would print the exception's text, which may
quote a message). Nothing is persisted: a job that was due while the server was down runs at
the next start, except the jobs in `EMBEDDED_SCHEDULE_DELAYED` (the template sync: every web
worker would call the provider at once on each start, and the flow timeouts wait while a job
runs), whose first run is a full interval after start.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

# Management commands that are servers (everything else, e.g. migrate or shell, is not).
SERVER_COMMANDS = ("runserver",)
SERVER_PROGRAMS = ("gunicorn", "uvicorn", "daphne")


@dataclass
class Job:
    """A function run every `every` seconds (the first run one tick after start, or a full
    interval after it when `delayed`)."""

    name: str
    every: float
    run: Callable[[], object]
    next_due: float = field(default=0.0)
    delayed: bool = False


def jobs_from_beat(
    schedule: Mapping[str, Mapping[str, Any]],
    *,
    overrides: Mapping[str, float],
    delayed: Collection[str] = (),
) -> list[Job]:
    """One job per beat entry with a numeric schedule, running the task's function in-process
    (the task name is its import path), every `overrides[name]` seconds when given; those
    named in `delayed` first run a full interval after start."""
    jobs = []
    for name, entry in schedule.items():
        every = overrides.get(name, entry.get("schedule"))
        if not isinstance(every, int | float) or every <= 0:
            continue  # crontab-style entries are not run embedded (none exist today)
        task = import_string(str(entry["task"]))
        jobs.append(Job(name=name, every=float(every), run=task, delayed=name in delayed))
    return jobs


def should_start(
    *,
    argv: Sequence[str],
    environ: Mapping[str, str],
    broker_url: str,
    enabled: bool,
) -> bool:
    """Whether this process should run the embedded schedule.

    Requires: no broker (beat's job then), the setting on (off in the test settings), and a
    server process: a gunicorn worker, or `runserver`'s serving process (the autoreloader's
    parent only watches files and restarts the child; the child has `RUN_MAIN=true`, and with
    `--noreload` there is one process). A one-off command (`migrate`, `shell`, `seed_demo`)
    never starts it.
    """
    if broker_url or not enabled:
        return False
    program = os.path.basename(argv[0]) if argv else ""
    command = argv[1] if len(argv) > 1 else ""
    # gunicorn's arbiter sets SERVER_SOFTWARE before it loads the application.
    if environ.get("SERVER_SOFTWARE", "").startswith("gunicorn") or program in SERVER_PROGRAMS:
        return True
    if command in SERVER_COMMANDS:
        return "--noreload" in argv or environ.get("RUN_MAIN") == "true"
    return False


class Scheduler:
    """Runs due jobs, one at a time, in one daemon thread (`start`/`stop`), or synchronously
    (`run_due`). A job that raises is logged (its name and the error's type, never its text)
    and runs again at its next due time; the loop carries on."""

    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        tick: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jobs = list(jobs)
        self.tick = tick
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        start = clock()
        for job in self.jobs:
            job.next_due = start + (job.every if job.delayed else min(tick, job.every))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_due(self, now: float | None = None) -> list[str]:
        """Run every job due at `now` (the clock's time by default); return their names."""
        now = self._clock() if now is None else now
        ran = []
        for job in self.jobs:
            if self._stop.is_set() and self._thread is not None:
                break
            if job.next_due > now:
                continue
            # The next run counts from this one: a slow run is never followed by a burst.
            job.next_due = now + job.every
            ran.append(job.name)
            try:
                job.run()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any job
                logger.error(
                    "scheduled job failed", extra={"job": job.name, "error": type(exc).__name__}
                )
        return ran

    def start(self) -> None:
        """Start the thread (once; a second call does nothing)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="chatai-scheduler", daemon=True)
        self._thread.start()
        logger.info(
            "embedded scheduler started",
            extra={"jobs": [job.name for job in self.jobs], "tick": self.tick},
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop after the job it is running, and wait up to `timeout`."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.tick):
                # Like a request: a connection broken or past CONN_MAX_AGE is replaced.
                close_old_connections()
                try:
                    self.run_due()
                finally:
                    close_old_connections()
        finally:
            connections.close_all()


_lock = threading.Lock()
_scheduler: Scheduler | None = None
_owner_pid: int | None = None


def embedded_scheduler() -> Scheduler:
    """The scheduler for this process's settings (not started)."""
    return Scheduler(
        jobs_from_beat(
            settings.CELERY_BEAT_SCHEDULE,
            overrides=settings.EMBEDDED_SCHEDULE_SECONDS,
            delayed=settings.EMBEDDED_SCHEDULE_DELAYED,
        ),
        tick=settings.EMBEDDED_SCHEDULER_TICK_SECONDS,
    )


def start_if_server(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Scheduler | None:
    """Start this process's scheduler when `should_start` says so; at most one per process
    (a forked child that inherited a started one gets its own). Returns it, or None."""
    global _scheduler, _owner_pid
    if not should_start(
        argv=sys.argv if argv is None else argv,
        environ=os.environ if environ is None else environ,
        broker_url=settings.CELERY_BROKER_URL,
        enabled=settings.EMBEDDED_SCHEDULER,
    ):
        return None
    with _lock:
        if _scheduler is None or _owner_pid != os.getpid():
            _scheduler = embedded_scheduler()
            _owner_pid = os.getpid()
            atexit.register(stop)
        _scheduler.start()
        return _scheduler


def stop() -> None:
    """Stop this process's scheduler, if it runs (gunicorn's `worker_exit`, tests)."""
    global _scheduler
    with _lock:
        if _scheduler is not None and _owner_pid == os.getpid():
            _scheduler.stop()
        _scheduler = None
