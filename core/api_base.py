"""The base of every tenant API view: who may use which tenant, decided once.

A request is made by a logged-in user (a session from `/api/controller/auth` or the admin) or
with a tenant API key (`Authorization: Api-Key <key>`, see `tenants.authentication`). What
either may do is decided by `tenants.access`, the same layer the admin asks:

- A tenant the caller cannot see (another tenant's, a deleted one, an id that does not exist)
  answers 404, the same for all of them, so nobody learns which tenant ids exist.
- On a tenant the caller sees, an action its role does not allow answers 403.
- An authenticated user who sees no tenant at all (no membership, not platform staff) gets 403
  everywhere.

`TenantScopedMixin` resolves the tenant from the URL (`tenant` kwarg), checks the action the
request needs (`read_action`, `write_action`, `action_permissions`), binds the tenant id to the log
context and filters every queryset by tenant. Views never scope by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from core.context import bind_tenant
from tenants import access
from tenants.access import Action
from tenants.models import Tenant, TenantAPIKey


def request_api_key(request: Request) -> TenantAPIKey | None:
    return request.auth if isinstance(request.auth, TenantAPIKey) else None


def request_user(request: Request) -> Any:
    """The person behind a session request (for `created_by`, `sent_by`); None for a key."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or request_api_key(request) is not None:
        return None
    return user


class HasTenantAccess(BasePermission):
    """A tenant API key, platform staff or a member of some tenant. Unauthenticated requests
    get 401 (not 403); a user who sees no tenant gets 403."""

    message = "Your account has no access to any tenant; ask an owner to invite you."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 with the authenticate header
        return request_api_key(request) is not None or access.has_any_access(request.user)


class IsLoggedIn(BasePermission):
    """Any logged-in user, with or without tenant access (to log out); not an API key."""

    message = "This endpoint is for logged-in users, not API keys."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request_user(request) is not None


class IsSessionUser(HasTenantAccess):
    """A logged-in user with access to some tenant (an API key gets 403: it is no user)."""

    message = "This endpoint is for logged-in users, not API keys."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request_user(request) is not None and access.has_any_access(request.user)


def parse_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def tenant_for_request(request: Request, tenant_id: object) -> Tenant:
    """The live tenant `tenant_id` if the caller may see it; NotFound otherwise.

    Not found, deleted, malformed and "another tenant's" are the same 404.
    """
    pk = parse_uuid(tenant_id)
    if pk is None or access.role_in(request.user, pk) is None:
        raise exceptions.NotFound()
    api_key = request_api_key(request)
    if api_key is not None:
        return api_key.tenant  # loaded with the key (select_related), live and active
    tenant = Tenant.objects.filter(pk=pk).first()
    if tenant is None:
        raise exceptions.NotFound()
    return tenant


def require(request: Request, action: Action, tenant: Tenant) -> None:
    """PermissionDenied (403) unless the caller may take `action` in `tenant`."""
    if not access.can(request.user, action, tenant):
        raise exceptions.PermissionDenied(access.denied_message(action))


class TenantScopedMixin:
    """Resolve `self.tenant` from the URL once per request, check the caller's role, and scope
    every queryset to the tenant.

    - `read_action` (safe methods) and `write_action` (the others): what the route needs.
    - `action_permissions`: viewset actions that need something else (`{"export": Action.EXPORT}`).
    - `tenant_field`: the lookup from the model to its tenant (default `tenant`).
    """

    tenant_url_kwarg = "tenant"
    tenant_field = "tenant"
    read_action = Action.VIEW
    write_action = Action.MANAGE
    action_permissions: Mapping[str, Action] = {}
    permission_classes = [HasTenantAccess]
    tenant: Tenant

    def required_action(self, request: Request) -> Action:
        name = getattr(self, "action", None)
        if name in self.action_permissions:
            return self.action_permissions[name]
        return self.read_action if request.method in SAFE_METHODS else self.write_action

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self.tenant = tenant_for_request(request, kwargs.get(self.tenant_url_kwarg))
        bind_tenant(self.tenant.pk)
        require(request, self.required_action(request), self.tenant)

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()  # type: ignore[misc]
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request tenant
            return queryset.none()
        return queryset.filter(**{self.tenant_field: self.tenant})

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()  # type: ignore[misc]
        context["tenant"] = getattr(self, "tenant", None)
        return context


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
