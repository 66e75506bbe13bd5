"""The Celery app. Without `CELERY_BROKER_URL` tasks run eagerly, in-process (see settings).

Metrics: the worker's pool processes count sends and flow outcomes. With
`PROMETHEUS_MULTIPROC_DIR` set they write to that directory, and with `WORKER_METRICS_PORT` set
the worker's main process serves their merged counts on that port (Prometheus text format).
"""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_shutdown

from core import broker, prometheus_multiprocess

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatai.settings.production")

broker.use_for_redis_urls()  # one Redis client per channel for publishing
app = Celery("chatai")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _worker_metrics(**_kwargs: object) -> None:
    """In the worker's main process, before the pool starts."""
    prometheus_multiprocess.prepare()
    port = os.environ.get("WORKER_METRICS_PORT", "").strip()
    if port:
        prometheus_multiprocess.serve(int(port))


@worker_process_shutdown.connect
def _worker_process_metrics(pid: int | None = None, **_kwargs: object) -> None:
    prometheus_multiprocess.process_exited(pid or os.getpid())
