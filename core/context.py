"""Per-request (or per-task) context carried into every log line: request id and tenant id."""

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
tenant_id_var: ContextVar[str | None] = ContextVar("tenant_id", default=None)


def bind_tenant(tenant_id: object) -> None:
    """Record the tenant the current request or task works for (shown in log lines)."""
    tenant_id_var.set(str(tenant_id) if tenant_id else None)
