"""gunicorn reads this file from the working directory: Prometheus bookkeeping for its workers.

With `PROMETHEUS_MULTIPROC_DIR` set (the Docker image sets it), the master empties the
directory at start and forgets each worker's live-only values when it exits, so `/metrics`
merges every worker's counts. Without it these hooks do nothing.
"""

from core import prometheus_multiprocess


def on_starting(server):
    prometheus_multiprocess.prepare()


def child_exit(server, worker):
    prometheus_multiprocess.process_exited(worker.pid)
