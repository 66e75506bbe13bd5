"""Per-request (or per-task) context carried into every log line: request id and tenant id."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
tenant_id_var: ContextVar[str | None] = ContextVar("tenant_id", default=None)


def bind_tenant(tenant_id: object) -> None:
    """Record the tenant the current request works for (shown in log lines) until the request
    ends (`RequestIdMiddleware` resets it). Outside a request, use `tenant_bound`."""
    tenant_id_var.set(str(tenant_id) if tenant_id else None)


@contextmanager
def tenant_bound(tenant_id: object) -> Iterator[None]:
    """Log lines inside the block carry this tenant (None: no tenant); the previous binding
    is back afterwards, also on an exception. For work that is not one whole request: one item
    of a webhook body, a task (a worker process runs task after task in the same context)."""
    token = tenant_id_var.set(str(tenant_id) if tenant_id else None)
    try:
        yield
    finally:
        tenant_id_var.reset(token)
