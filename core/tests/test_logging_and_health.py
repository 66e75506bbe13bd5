import json
import logging
import sys

import pytest
from django.test import override_settings

from core.logging import ConsoleFormatter, ContextFilter, JsonFormatter


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured():
    handler = Capture()
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_every_check(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "database", "cache", "broker", "llm"}
    assert body["database"] == "ok"
    assert body["llm"] == "not-configured"


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_does_not_answer(client, monkeypatch):
    from core import views

    monkeypatch.setattr(views, "_check_database", lambda: "down")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "down"


@pytest.mark.django_db
@override_settings(
    REDIS_URL="redis://127.0.0.1:6399/0",
    CACHES={
        "default": {
            "BACKEND": "core.cache.FallbackCache",
            "LOCATION": "redis://127.0.0.1:6399/0",
            "OPTIONS": {"PRIMARY": "redis", "FALLBACK": "local"},
        },
        "redis": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:6399/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
        "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    },
)
def test_readyz_reports_a_missing_redis_as_degraded_not_down(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["cache"] == "degraded"


def test_request_id_is_taken_or_generated_and_echoed(client):
    given = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert given["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz")
    assert len(generated["X-Request-ID"]) == 32
    forged = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert forged["X-Request-ID"] != "bad id\nwith newline"


def test_log_lines_are_json_with_request_and_tenant_ids(captured, rf):
    from core.context import bind_tenant, request_id_var, tenant_id_var

    request_token = request_id_var.set("req-1")
    tenant_token = tenant_id_var.set(None)
    try:
        bind_tenant("11111111-1111-1111-1111-111111111111")
        logging.getLogger("chatai.test").info("message stored", extra={"message_id": "m-1"})
    finally:
        request_id_var.reset(request_token)
        tenant_id_var.reset(tenant_token)
    line = json.loads(captured.lines[-1])
    assert line["message"] == "message stored"
    assert line["request_id"] == "req-1"
    assert line["tenant_id"] == "11111111-1111-1111-1111-111111111111"
    assert line["message_id"] == "m-1"


@pytest.mark.django_db
def test_request_logs_never_carry_headers_or_bodies(client, captured):
    # A 404 from django.request attaches the request to the record: its body must not leak.
    client.post(
        "/no-such-page",
        data={"phone": "+5511912345678", "text": "secret words"},
        HTTP_AUTHORIZATION="Api-Key chk_secretkey",
    )
    joined = "\n".join(captured.lines)
    assert "+5511912345678" not in joined
    assert "secret words" not in joined
    assert "chk_secretkey" not in joined


def test_no_formatter_writes_an_exception_message():
    # given: an exception whose message quotes input
    typed = "maria@example.com"
    try:
        float(typed)
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())

    # then: both formats keep the traceback and the type, not the message
    for formatter in (JsonFormatter(), ConsoleFormatter()):
        line = formatter.format(record)
        assert "ValueError" in line and "Traceback" in line
        assert "maria@example.com" not in line
