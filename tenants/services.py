"""Writes for tenants and their project config."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from tenants.models import (
    DEFAULT_OPT_IN_KEYWORDS,
    DEFAULT_OPT_OUT_KEYWORDS,
    Tenant,
    TenantProjectConfig,
)

CONFIG_FIELDS = ("business_description", "target_audience", "communication_style", "language")


def _clean_keywords(field: str, keywords: list[str] | None, default: list[str]) -> list[str]:
    if keywords is None:
        return list(default)
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise ValidationError({field: "Must be a list of strings."})
    cleaned = []
    for keyword in keywords:
        value = keyword.strip().lower()
        if value and value not in cleaned:
            cleaned.append(value)
    return cleaned


def _unique_slug(base: str) -> str:
    base = (slugify(base) or "tenant")[:70]
    slug, counter = base, 2
    while Tenant.objects.filter(slug=slug).exists():
        slug = f"{base}-{counter}"
        counter += 1
    return slug


@transaction.atomic
def tenant_create(
    *,
    name: str,
    slug: str | None = None,
    owner_name: str = "",
    owner_email: str = "",
    owner_phone: str = "",
    config: dict[str, Any] | None = None,
    opt_out_keywords: list[str] | None = None,
    opt_in_keywords: list[str] | None = None,
    is_active: bool = True,
) -> Tenant:
    """Create a tenant and its project config in one transaction.

    A missing slug is derived from the name (made unique); a given slug that is taken raises
    ValidationError. Unknown config keys raise ValidationError.
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "This field is required."})
    config = dict(config or {})
    unknown = sorted(set(config) - set(CONFIG_FIELDS))
    if unknown:
        raise ValidationError({"config": f"Unknown keys: {', '.join(unknown)}."})
    if slug:
        if slug != slugify(slug):
            raise ValidationError({"slug": "Use lowercase letters, numbers and hyphens."})
        if Tenant.objects.filter(slug=slug).exists():
            raise ValidationError({"slug": "A tenant with this slug already exists."})
    else:
        slug = _unique_slug(name)
    tenant = Tenant.objects.create(
        name=name,
        slug=slug,
        owner_name=owner_name,
        owner_email=owner_email,
        owner_phone=owner_phone,
        is_active=is_active,
        opt_out_keywords=_clean_keywords(
            "opt_out_keywords", opt_out_keywords, DEFAULT_OPT_OUT_KEYWORDS
        ),
        opt_in_keywords=_clean_keywords(
            "opt_in_keywords", opt_in_keywords, DEFAULT_OPT_IN_KEYWORDS
        ),
    )
    TenantProjectConfig.objects.create(tenant=tenant, **config)
    return tenant


@transaction.atomic
def tenant_update(*, tenant: Tenant, data: dict[str, Any]) -> Tenant:
    """Update tenant fields and (nested under `config`) project config fields."""
    config = data.pop("config", None)
    if "opt_out_keywords" in data:
        data["opt_out_keywords"] = _clean_keywords(
            "opt_out_keywords", data["opt_out_keywords"], DEFAULT_OPT_OUT_KEYWORDS
        )
    if "opt_in_keywords" in data:
        data["opt_in_keywords"] = _clean_keywords(
            "opt_in_keywords", data["opt_in_keywords"], DEFAULT_OPT_IN_KEYWORDS
        )
    if "slug" in data and data["slug"] != tenant.slug:
        if Tenant.objects.filter(slug=data["slug"]).exclude(pk=tenant.pk).exists():
            raise ValidationError({"slug": "A tenant with this slug already exists."})
    for field, value in data.items():
        setattr(tenant, field, value)
    tenant.save()
    if config:
        project_config, _ = TenantProjectConfig.objects.get_or_create(tenant=tenant)
        for field, value in config.items():
            if field not in CONFIG_FIELDS:
                raise ValidationError({"config": f"Unknown key: {field}."})
            setattr(project_config, field, value)
        project_config.save()
    return tenant
