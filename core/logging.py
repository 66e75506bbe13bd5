"""Structured logging: one JSON object per line, carrying the request id and tenant id.

Log calls must never pass PII or secrets: log ids (message, thread, channel, tenant) and counts,
not phone numbers, names, emails or texts. `ContextFilter` also drops the request object that
Django attaches to some records, so headers and bodies never reach the formatter.
"""

import json
import logging
import traceback
from datetime import UTC, datetime

from core.context import request_id_var, tenant_id_var

_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()) | {
    "message",
    "asctime",
    "request_id",
    "tenant_id",
    "request",
    "server_time",
    "status_code",
}


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.tenant_id = tenant_id_var.get()
        request = getattr(record, "request", None)
        if request is not None:
            record.path = getattr(request, "path", None)
            record.method = getattr(request, "method", None)
            del record.request
        return True


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRS and not key.startswith("_")
    }


def _redacted_traceback(exc: BaseException | None) -> str:
    """The traceback frames and exception classes of a chain, without the exception messages.

    Exception messages carry data (`float("maria@example.com")`, a driver's "Key (...)=(...)",
    a provider's "The 'To' number ... is not valid"), so they are never logged; the frames
    (code, not data) and the classes are enough to find the bug.
    """
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    parts: list[str] = []
    for item in reversed(chain):
        if parts:
            parts.append("\nwhich led to:\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(item.__traceback__))
        parts.append(f"{type(item).__module__}.{type(item).__qualname__}: <message not logged>")
    return "".join(parts)


class _RedactedTracebacks(logging.Formatter):
    """Tracebacks without exception messages (they can quote input: a phone, a text)."""

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]  # noqa: N802
        return _redacted_traceback(ei[1] if ei else None)


class JsonFormatter(_RedactedTracebacks):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "tenant_id": getattr(record, "tenant_id", None),
        }
        payload.update(_extras(record))
        if record.exc_info:
            payload["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class ConsoleFormatter(_RedactedTracebacks):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = {
            "request_id": getattr(record, "request_id", None),
            "tenant_id": getattr(record, "tenant_id", None),
            **_extras(record),
        }
        shown = " ".join(f"{key}={value}" for key, value in context.items() if value is not None)
        return f"{line} {shown}" if shown else line
