"""What every API view shares, whoever it belongs to: the error envelope (in responses and in
the OpenAPI schema), the JSON 404 and CSRF failure, and small parsing helpers.

Who may use which tenant is decided in `tenants.api_base` (the base of every tenant API view);
`core` imports no app (tests/test_layers.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


def parse_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


# --- OpenAPI: the error envelope on every operation -----------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="A field name, or a JSON path into a flow document.")
    node = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="In `invalid_flow` details: the id of the node `path` leads into "
        "(`nodes[3]` → its id), or null.",
    )
    message = serializers.CharField()


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. `not_found`, `invalid_flow`.")
    message = serializers.CharField()
    details = ErrorDetailSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    """`{"error": {"code", "message", "details"}}`, the body of every 4xx answer."""

    error = ErrorBodySerializer()


_ERROR_DESCRIPTIONS = {
    "400": "Invalid input; `details` lists each problem with its path.",
    "401": "Missing or invalid credentials.",
    "403": "Authenticated, but the role does not allow this (e.g. an API key on its keys).",
    "404": "Not found (also another tenant's object).",
    "409": "Conflict with the current state.",
    "415": "The body's content type is not accepted (or the body cannot be parsed as it).",
    "429": "Too many requests; see the Retry-After header.",
}


class ChataiAutoSchema(AutoSchema):
    """Adds the error envelope responses to each operation, and says what the server refuses.

    401, 403 and 404 everywhere authentication applies, 400 on writes and on reads with query
    filters or page numbers, 415 on writes. Views add others (409, 429) with `extend_schema`.
    Query filters (`core.filters.StrictFilterSet`) refuse empty values, so string filters say
    `minLength: 1`; date-time filters carry `core.filters.DATETIME_PATTERN` (offsets under 16
    hours).
    """

    def _error_codes(self) -> list[str]:
        codes = []
        if self.view.authentication_classes:
            # 404 too: unknown ids, another tenant (for a key), pages and cursors that do not
            # exist, and the tenant list, which does not exist for a key.
            codes += ["401", "403", "404"]
        elif "{" in self.path:
            codes.append("404")
        if (
            self.method in ("POST", "PUT", "PATCH")
            or self._has_query_filters()
            or self._is_paginated_list()
        ):
            codes.append("400")
        if self.method in ("POST", "PUT", "PATCH"):
            codes.append("415")
        return codes

    def _has_query_filters(self) -> bool:
        view = self.view
        return bool(
            getattr(view, "filterset_class", None)
            or getattr(view, "filterset_fields", None)
            or getattr(view, "query_serializer_class", None)
        )

    def _is_paginated_list(self) -> bool:
        return (
            self.method == "GET"
            and getattr(self.view, "pagination_class", None) is not None
            and self._is_list_view()
        )

    def _get_filter_parameters(self) -> list[dict[str, Any]]:
        from core.filters import DATETIME_PATTERN

        parameters = super()._get_filter_parameters()
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if schema.get("type") != "string" or "enum" in schema:
                continue
            if schema.get("format") == "date-time":
                schema["pattern"] = DATETIME_PATTERN
            elif "format" not in schema:
                schema.setdefault("minLength", 1)
        return parameters

    def _map_serializer(self, serializer: Any, direction: str, bypass_extensions: bool = False):  # type: ignore[no-untyped-def]
        """A request serializer's `openapi_request_extra` (rules a field cannot state, e.g.
        `minProperties`) is merged into its request component, PATCH ones included."""
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        extra = getattr(serializer, "openapi_request_extra", None)
        if extra and direction == "request":
            schema = {**schema, **extra}
        return schema

    def _get_request_body(self, direction: str = "request") -> dict[str, Any] | None:
        """A body whose serializer states extra rules (`openapi_request_extra`) is required."""
        body = super()._get_request_body(direction)  # type: ignore[arg-type]
        if body and getattr(self.get_request_serializer(), "openapi_request_extra", None):
            body["required"] = True
        return body

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)  # type: ignore[arg-type]
        for code in self._error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=_ERROR_DESCRIPTIONS[code]),
                    code,
                    direction=direction,
                )
        return dict(sorted(responses.items()))


def error_response(code: str, description: str | None = None) -> dict[str, OpenApiResponse]:
    """An `extend_schema(responses=...)` entry for an extra error status."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=description or _ERROR_DESCRIPTIONS[code])
    }


# Ids in API URLs are UUIDs; anything else does not match a route and answers the JSON 404.
UUID_PATTERN = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


def error_envelope(code: str, message: str, status: int, **headers: str) -> JsonResponse:
    """The API's error body `{"error": {"code", "message", "details"}}` outside DRF views."""
    response = JsonResponse(
        {"error": {"code": code, "message": message, "details": []}}, status=status
    )
    for name, value in headers.items():
        response[name] = value
    return response


@csrf_exempt
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any unknown /api/ path, whatever the method: the JSON 404 envelope (a GET missing its
    trailing slash is redirected, as APPEND_SLASH would have done).

    Exempt from CSRF: it reads nothing and changes nothing, so an unsafe method on an unknown
    path is a 404 like any other, not Django's HTML CSRF page."""
    path = request.path_info
    if settings.APPEND_SLASH and not path.endswith("/") and request.method in ("GET", "HEAD"):
        try:
            match = resolve(path + "/", urlconf=getattr(request, "urlconf", None))
        except Resolver404:
            match = None
        if match is not None and match.url_name != "api-not-found":
            query = request.META.get("QUERY_STRING", "")
            return HttpResponsePermanentRedirect(
                request.path + "/" + (f"?{query}" if query else "")
            )
    return error_envelope("not_found", "Not found.", 404)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """`CSRF_FAILURE_VIEW`: the JSON envelope (403 `csrf_failed`) under /api/, Django's page
    elsewhere (the admin)."""
    if request.path_info.startswith("/api/"):
        return error_envelope(
            "csrf_failed",
            f"CSRF Failed: {reason} Send the X-CSRFToken header with the token from the "
            "login answer (or the csrftoken cookie).",
            403,
        )
    return django_csrf_failure(request, reason=reason)
