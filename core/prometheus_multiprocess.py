"""Prometheus counts across processes (gunicorn workers, Celery pool processes).

prometheus_client keeps each process's values in memory, so behind gunicorn a scrape of
`/metrics` would see one random worker's counts. With `PROMETHEUS_MULTIPROC_DIR` set, every
process writes its values to files in that directory and a scrape merges them. This module
does the bookkeeping around that directory; it imports nothing from Django, because
gunicorn's master (gunicorn.conf.py) and Celery's signal handlers call it before Django is
set up.

One directory per service: each service's parent process empties it when it starts, so two
services sharing one would erase each other's counts.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

ENV = "PROMETHEUS_MULTIPROC_DIR"


def directory() -> Path | None:
    """The multiprocess directory, or None when each process keeps its own counts."""
    value = os.environ.get(ENV, "").strip()
    return Path(value) if value else None


def prepare() -> None:
    """Create the directory and remove the files of a previous run. Call once, in the parent
    process, before any worker starts (their counts are what the directory then holds)."""
    path = directory()
    if path is None:
        return
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)


def process_exited(pid: int) -> None:
    """Forget the live-only values (gauges) of a worker process that exited; its counters
    and histograms stay in the totals."""
    if directory() is not None:
        multiprocess.mark_process_dead(pid)


def registry() -> CollectorRegistry:
    """A registry with the merged values of every process in the directory (without one,
    this process's own registry)."""
    if directory() is None:
        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)
    return merged


def serve(port: int, addr: str = "0.0.0.0") -> int:
    """Serve `registry()` on `port` (a plain Prometheus endpoint, in a thread), for processes
    without a web server of their own: the Celery worker. Keep the port inside the
    deployment's network; the values carry no PII. Returns the port (useful with 0)."""
    server, _thread = start_http_server(port, addr=addr, registry=registry())
    return int(server.server_port)
