"""The liveness and readiness probes."""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001
        logger.warning("readiness: database unavailable", extra={"error": type(exc).__name__})
        return "down"
    return "ok"


def _check_cache() -> str:
    if not settings.REDIS_URL:
        return "local"
    ping = getattr(cache, "ping", None)
    if ping is not None:
        return "ok" if ping() else "degraded"
    try:
        cache.get("chatai:ping")
    except Exception:  # noqa: BLE001
        return "degraded"
    return "ok"


def _check_broker() -> str:
    if not settings.CELERY_BROKER_URL:
        return "in-process"
    from celery import current_app as app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
    except Exception as exc:  # noqa: BLE001
        logger.warning("readiness: broker unavailable", extra={"error": type(exc).__name__})
        return "degraded"
    return "ok"


def _check_llm() -> str:
    provider = settings.LLM_PROVIDER
    if provider in ("", "none"):
        return "not-configured"
    key = {"openai": settings.OPENAI_API_KEY, "google": settings.GOOGLE_API_KEY}.get(provider)
    return "configured" if key else "missing-key"


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers, 503 otherwise. Redis or broker problems are `degraded`."""
    checks = {
        "database": _check_database(),
        "cache": _check_cache(),
        "broker": _check_broker(),
        "llm": _check_llm(),
    }
    ready = checks["database"] == "ok"
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", **checks}, status=200 if ready else 503
    )
