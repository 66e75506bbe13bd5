"""Who may do what: the one authorization layer of the admin, the API sessions and the API keys.

Every decision about a tenant's data goes through `tenant_visible` / `can` / `scope` here; the
admin (`tenants.admin_base.TenantScopedAdmin`), the API (`tenants.api_base.TenantScopedMixin`) and
the services' callers ask the same question and get the same answer for the same principal.

Principals (`request.user` in both the admin and the API):

- **Platform staff**: an active superuser, or an active user holding the `tenants.platform_staff`
  permission (the "Platform staff" group has it). Sees every tenant, switched-off ones
  included, and may do everything. `is_staff` alone grants nothing.
- **A member**: an active user with a live membership (`TenantMembership`) of a live, switched-on
  tenant. The role decides what they may do there (`ROLE_ACTIONS`).
- **A tenant API key** (`request.user` is `tenants.authentication.APIKeyUser`): its own tenant
  only, with the fixed powers it has always had (`ROLE_ACTIONS[API_KEY]`).

Anyone else sees no tenant. A tenant a principal cannot see answers 404 exactly like an id
that does not exist; a visible tenant with a forbidden action answers 403.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from tenants.models import Role, Tenant, TenantMembership


class Action(StrEnum):
    VIEW = "view"  # read the tenant's conversations, contacts, channels, flows, stats
    REPLY = "reply"  # answer as an agent, hand off, close and reopen conversations
    EXPORT = "export"  # everything held about a contact, decrypted
    ERASE = "erase"  # a contact's erasure
    MANAGE = "manage"  # channels, flows, the tenant's own settings and AI config
    MANAGE_KEYS = "manage_keys"  # the tenant's API keys
    MANAGE_MEMBERS = "manage_members"  # invite, change and remove members
    PLATFORM = "platform"  # create, switch off or delete tenants, slugs, a channel's API host


PLATFORM_STAFF = "platform"
API_KEY = "api_key"
PLATFORM_STAFF_PERMISSION = "tenants.platform_staff"
PLATFORM_STAFF_GROUP = "Platform staff"

_OWNER = frozenset(
    {
        Action.VIEW,
        Action.REPLY,
        Action.EXPORT,
        Action.ERASE,
        Action.MANAGE,
        Action.MANAGE_KEYS,
        Action.MANAGE_MEMBERS,
    }
)

ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    PLATFORM_STAFF: frozenset(Action),
    Role.OWNER: _OWNER,
    Role.AGENT: frozenset({Action.VIEW, Action.REPLY}),
    Role.VIEWER: frozenset({Action.VIEW}),
    # A key's powers predate memberships and stay exactly as they were: everything on its own
    # tenant but its keys, its members and the platform's decisions.
    API_KEY: frozenset({Action.VIEW, Action.REPLY, Action.EXPORT, Action.ERASE, Action.MANAGE}),
}

_ROLES_ATTR = "_chatai_tenant_roles"

M = TypeVar("M", bound=Model)


def _api_key_tenant_id(principal: Any) -> uuid.UUID | None:
    api_key = getattr(principal, "api_key", None)
    return getattr(api_key, "tenant_id", None) if api_key is not None else None


def _is_user(principal: Any) -> bool:
    return bool(
        principal is not None
        and getattr(principal, "is_authenticated", False)
        and getattr(principal, "is_active", False)
        and _api_key_tenant_id(principal) is None
    )


def is_platform_staff(principal: Any) -> bool:
    """An active superuser or holder of `tenants.platform_staff` (never an API key)."""
    if not _is_user(principal):
        return False
    return bool(principal.is_superuser or principal.has_perm(PLATFORM_STAFF_PERMISSION))


def member_roles(principal: Any) -> dict[uuid.UUID, str]:
    """Tenant id -> role of a user's live memberships of live, switched-on tenants.

    One query, remembered on the user object (which lives as long as its request)."""
    if not _is_user(principal):
        return {}
    roles = getattr(principal, _ROLES_ATTR, None)
    if roles is None:
        roles = dict(
            TenantMembership.objects.filter(
                user=principal, tenant__deleted_at__isnull=True, tenant__is_active=True
            ).values_list("tenant_id", "role")
        )
        setattr(principal, _ROLES_ATTR, roles)
    return roles


def forget_roles(principal: Any) -> None:
    """Drop the remembered roles (after this request changed the principal's memberships)."""
    if principal is not None and hasattr(principal, _ROLES_ATTR):
        delattr(principal, _ROLES_ATTR)


def role_in(principal: Any, tenant: Tenant | uuid.UUID | None) -> str | None:
    """The principal's role in the tenant (`PLATFORM_STAFF`, `API_KEY` or a `Role`), or None
    when the tenant is not theirs to see."""
    if tenant is None:
        return None
    tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
    key_tenant = _api_key_tenant_id(principal)
    if key_tenant is not None:
        return API_KEY if key_tenant == tenant_id else None
    if is_platform_staff(principal):
        return PLATFORM_STAFF
    return member_roles(principal).get(tenant_id)


def can(principal: Any, action: Action, tenant: Tenant | uuid.UUID | None) -> bool:
    role = role_in(principal, tenant)
    return role is not None and action in ROLE_ACTIONS[role]


def can_anywhere(principal: Any, action: Action) -> bool:
    """True when the principal may take `action` in at least one tenant."""
    if _api_key_tenant_id(principal) is not None:
        return action in ROLE_ACTIONS[API_KEY]
    if is_platform_staff(principal):
        return True
    return any(action in ROLE_ACTIONS[role] for role in member_roles(principal).values())


def has_any_access(principal: Any) -> bool:
    """May log in to the staff pages: platform staff or a member of some tenant."""
    return is_platform_staff(principal) or bool(member_roles(principal))


def tenant_ids_where(principal: Any, action: Action) -> list[uuid.UUID] | None:
    """Ids of the tenants where the principal may take `action`; None means every tenant."""
    key_tenant = _api_key_tenant_id(principal)
    if key_tenant is not None:
        return [key_tenant] if action in ROLE_ACTIONS[API_KEY] else []
    if is_platform_staff(principal):
        return None
    return [
        tenant_id
        for tenant_id, role in member_roles(principal).items()
        if action in ROLE_ACTIONS[role]
    ]


def scope(
    queryset: QuerySet[M],
    principal: Any,
    *,
    tenant_field: str = "tenant",
    action: Action = Action.VIEW,
) -> QuerySet[M]:
    """`queryset` narrowed to the tenants where the principal may take `action`.

    `tenant_field` is the lookup from the model to its tenant (`"pk"` for tenants
    themselves)."""
    tenant_ids = tenant_ids_where(principal, action)
    if tenant_ids is None:
        return queryset
    lookup = "pk__in" if tenant_field == "pk" else f"{tenant_field}__in"
    return queryset.filter(**{lookup: tenant_ids})


def tenants_where(principal: Any, action: Action = Action.VIEW) -> QuerySet[Tenant]:
    """The live tenants where the principal may take `action` (for choices and lists)."""
    return scope(Tenant.objects.all(), principal, tenant_field="pk", action=action)


def tenant_of(obj: Any, tenant_field: str = "tenant") -> uuid.UUID | None:
    """The tenant id an object belongs to, following `tenant_field` (`a__b__tenant`)."""
    if isinstance(obj, Tenant):
        return obj.pk
    parts = tenant_field.split("__")
    for part in parts[:-1]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return getattr(obj, f"{parts[-1]}_id", None)


_DENIED = {
    Action.VIEW: "You have no access to this tenant's data.",
    Action.REPLY: "Your role may read conversations, not answer or change them.",
    Action.EXPORT: "Only the tenant's owners and platform staff may export a contact's data.",
    Action.ERASE: "Only the tenant's owners and platform staff may erase a contact's data.",
    Action.MANAGE: "Only the tenant's owners may change its channels, flows and settings.",
    Action.MANAGE_KEYS: "Only the tenant's owners and platform staff manage its API keys.",
    Action.MANAGE_MEMBERS: "Only the tenant's owners and platform staff manage its members.",
    Action.PLATFORM: "Only platform staff may do this.",
}


def denied_message(action: Action) -> str:
    """What a refused principal is told (403): which role would be needed, never more."""
    return _DENIED[action]
