"""gunicorn reads this file from the working directory: the access log format, and Prometheus
bookkeeping for its workers.

The access log (when enabled, `--access-logfile -`) shows the path without its query string and
without the client address: a query string can carry a phone number (`?phone=`) or the Meta
verify token, and the app's own JSON logs are where request details belong.

With `PROMETHEUS_MULTIPROC_DIR` set (the Docker image sets it), the master empties the
directory at start and forgets each worker's live-only values when it exits, so `/metrics`
merges every worker's counts. Without it these hooks do nothing.
"""

from core import prometheus_multiprocess

access_log_format = '"%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'


def on_starting(server):
    prometheus_multiprocess.prepare()


def child_exit(server, worker):
    prometheus_multiprocess.process_exited(worker.pid)


def worker_exit(server, worker):
    # The embedded scheduler (started with the application when no broker is set) stops cleanly.
    from core import scheduler

    scheduler.stop()
