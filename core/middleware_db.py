"""503 instead of 500 when the database is unreachable.

A provider webhook that gets a 503 is retried by the provider (the Cloud API retries for
days; Twilio when the webhook URL carries connection overrides such as `#rc=3`), and every
service that writes runs in a transaction, so a request that failed this way left nothing
behind. The log line names the error class only, never the query or its parameters.
"""

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30


class DatabaseUnavailableMiddleware:
    """Turn OperationalError / InterfaceError raised by a view into a short 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error(
            "database unavailable",
            extra={"error": type(exception).__name__, "path": request.path},
        )
        message = "The service is temporarily unavailable; please retry."
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse(
                {"error": {"code": "unavailable", "message": message, "details": []}},
                status=503,
            )
        else:
            response = HttpResponse(message, status=503, content_type="text/plain")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
