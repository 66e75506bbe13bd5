"""The JSON error envelope of the API: {"error": {"code", "message", "details"}}."""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.fields import get_error_detail
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class BadGateway(exceptions.APIException):
    """A provider we called refused or failed; the message carries its reason."""

    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The provider did not answer as expected."
    default_code = "provider_error"


class InvalidFlow(exceptions.APIException):
    """A flow document failed validation; `issues` are (path, message) pairs."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The flow is invalid."
    default_code = "invalid_flow"

    def __init__(self, issues: list[dict[str, str]], message: str | None = None) -> None:
        super().__init__(message or f"The flow has {len(issues)} error(s).")
        self.issues = issues


def _flatten(detail: Any, path: str = "") -> list[dict[str, str]]:
    if isinstance(detail, dict):
        out: list[dict[str, str]] = []
        for key, value in detail.items():
            child = key if not path else f"{path}.{key}"
            if key in ("non_field_errors", "__all__"):
                child = path
            out.extend(_flatten(value, child))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"path": path, "message": str(item)} for item in detail]
        out = []
        for index, value in enumerate(detail):
            out.extend(_flatten(value, f"{path}[{index}]"))
        return out
    return [{"path": path, "message": str(detail)}]


_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    502: "provider_error",
    415: "unsupported_media_type",
    429: "throttled",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        # A service refused the input: 400 with one detail per field (never a 500).
        exc = exceptions.ValidationError(detail=get_error_detail(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = _CODES.get(response.status_code, "error")
    details: list[dict[str, str]] = []
    if isinstance(exc, InvalidFlow):
        code, message, details = "invalid_flow", str(exc.detail), exc.issues
    elif isinstance(exc, exceptions.ValidationError):
        message = "The request is invalid."
        details = _flatten(exc.detail)
    elif isinstance(exc, exceptions.APIException):
        message = str(exc.detail)
        if response.status_code == 403 and message.startswith("CSRF Failed"):
            # DRF's SessionAuthentication: the same code as Django's CSRF_FAILURE_VIEW.
            code = "csrf_failed"
        if isinstance(exc.detail, str) and getattr(exc.detail, "code", None):
            detail_code = exc.detail.code
            if detail_code not in ("invalid", "error", None) and response.status_code in (409, 502):
                code = str(detail_code)
    else:
        message = "Error."
    response.data = {"error": {"code": code, "message": message, "details": details}}
    # More about the error for the client to act on (e.g. the templates it can send instead).
    response.data["error"].update(getattr(exc, "extra", None) or {})
    return response
