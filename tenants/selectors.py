"""Reads for tenants and their API keys."""

from django.db.models import QuerySet

from tenants.models import Tenant, TenantAPIKey


def tenant_list() -> QuerySet[Tenant]:
    """Live tenants with their project config (one query)."""
    return Tenant.objects.select_related("config").order_by("name", "id")


def api_key_list(*, tenant: Tenant) -> QuerySet[TenantAPIKey]:
    """The tenant's keys, newest first, revoked ones included (never the hash)."""
    return TenantAPIKey.objects.filter(tenant=tenant).order_by("-created_at", "-id")
