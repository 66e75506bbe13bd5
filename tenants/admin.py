"""Staff onboarding: a tenant with its project config and channels on one page.

A new tenant is created through `tenant_create` (tenant and config in one transaction) and new
channels through `channel_create`, exactly as the API does.
"""

from typing import Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from channels_app.admin import ChannelInline
from tenants.forms import TenantAdminForm, TenantProjectConfigForm
from tenants.models import Tenant, TenantAPIKey, TenantProjectConfig
from tenants.services import CONFIG_FIELDS, tenant_create


class ProjectConfigInline(admin.StackedInline):
    model = TenantProjectConfig
    form = TenantProjectConfigForm
    can_delete = False
    min_num = 1
    max_num = 1
    verbose_name_plural = "Project config (how the AI answers)"


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantAdminForm
    list_display = ["name", "slug", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [ProjectConfigInline, ChannelInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "is_active"]}),
        ("Owner (encrypted at rest)", {"fields": ["owner_name", "owner_email", "owner_phone"]}),
        ("Consent keywords", {"fields": ["opt_out_keywords", "opt_in_keywords"]}),
        ("Record", {"fields": ["id", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)
            return
        # The config was created with the tenant by tenant_create: update it from the inline
        # instead of inserting a second one.
        for formset in formsets:
            if formset.model is TenantProjectConfig:
                for inline_form in formset.forms:
                    config = form.instance.config
                    for field in CONFIG_FIELDS:
                        if field in inline_form.cleaned_data:
                            setattr(config, field, inline_form.cleaned_data[field])
                    config.save()
                formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
            else:
                self.save_formset(request, form, formset, change)

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        try:
            with transaction.atomic():
                created = tenant_create(
                    name=data["name"],
                    slug=data.get("slug") or None,
                    owner_name=data.get("owner_name", ""),
                    owner_email=data.get("owner_email", ""),
                    owner_phone=data.get("owner_phone", ""),
                    opt_out_keywords=data.get("opt_out_keywords") or None,
                    opt_in_keywords=data.get("opt_in_keywords") or None,
                    is_active=data.get("is_active", True),
                )
        except ValidationError as exc:  # a slug taken between validation and save
            raise ValidationError(exc.messages) from exc
        form.instance = created
        obj.pk = created.pk
        obj.__dict__.update(created.__dict__)

    def delete_model(self, request: HttpRequest, obj: Tenant) -> None:
        obj.soft_delete()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        queryset.soft_delete()


@admin.register(TenantAPIKey)
class TenantAPIKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "tenant", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "tenant__name"]
    list_select_related = ["tenant"]
    readonly_fields = ["tenant", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["hashed_key"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Keys are created through the API, which shows the key once.
        return False
