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

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from core.api_base import parse_uuid
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
        """The view's rows, always scoped to the tenant: `base_queryset()` filtered by
        `tenant_field`. Views override `base_queryset` (a selector, joins, order), never this
        (tests/test_api_isolation.py checks)."""
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request tenant
            return super().get_queryset().none()  # type: ignore[misc]
        return self.base_queryset().filter(**{self.tenant_field: self.tenant})

    def base_queryset(self) -> QuerySet:
        """What the view shows before the tenant scope (default: the class's `queryset`)."""
        return super().get_queryset()  # type: ignore[misc]

    def tenant_parent(self, queryset: QuerySet, url_kwarg: str) -> Any:
        """The object a nested route hangs from (the thread of `/threads/{thread}/messages/`):
        the tenant's own, or a 404 (another tenant's, a deleted one, a malformed id), looked
        up once per request."""
        parents = self.__dict__.setdefault("_tenant_parents", {})
        if url_kwarg not in parents:
            pk = parse_uuid(self.kwargs.get(url_kwarg))  # type: ignore[attr-defined]
            found = queryset.filter(tenant=self.tenant, pk=pk).first() if pk else None
            if found is None:
                raise exceptions.NotFound()
            parents[url_kwarg] = found
        return parents[url_kwarg]

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()  # type: ignore[misc]
        context["tenant"] = getattr(self, "tenant", None)
        return context
