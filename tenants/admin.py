"""Staff onboarding: a tenant with its project config and channels on one page; its members
and API keys.

A new tenant is created through `tenant_create` (tenant and config in one transaction), new
channels through `channel_create`, members through `tenants.members`, exactly as the API does.
What each user sees and may do here comes from `tenants.access` (see `tenants.admin_base`).
"""

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from channels_app.admin import ChannelInline
from tenants import access
from tenants.access import Action
from tenants.admin_base import TenantScopedAdmin, TenantScopedInline
from tenants.api_keys import api_key_create, api_key_revoke
from tenants.forms import (
    APIKeyCreateForm,
    InvitationForm,
    MemberChangeForm,
    TenantAdminForm,
    TenantProjectConfigForm,
)
from tenants.members import (
    invitation_create,
    invitation_revoke,
    invitation_url,
    member_is_last_owner,
    member_remove,
)
from tenants.models import (
    Tenant,
    TenantAPIKey,
    TenantInvitation,
    TenantMembership,
    TenantProjectConfig,
)
from tenants.services import CONFIG_FIELDS, tenant_create

# Tenant fields only platform staff change: switching a tenant off, its public slug.
PLATFORM_TENANT_FIELDS = ("slug", "is_active")


class ProjectConfigInline(TenantScopedInline, admin.StackedInline):
    # The config is made with its tenant (platform staff, on the add page), never added later.
    add_action = Action.PLATFORM
    delete_action = None
    model = TenantProjectConfig
    form = TenantProjectConfigForm
    can_delete = False
    min_num = 1
    max_num = 1
    verbose_name_plural = "Project config (how the AI answers)"


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    """Owners edit their tenant's details, AI config and channels; creating, switching off
    and deleting tenants is for platform staff."""

    tenant_field = "pk"
    add_action = delete_action = Action.PLATFORM
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

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and not access.can(request.user, Action.PLATFORM, obj):
            fields += PLATFORM_TENANT_FIELDS
        return fields

    def get_prepopulated_fields(self, request: HttpRequest, obj: Any = None) -> dict[str, Any]:
        if "slug" in self.get_readonly_fields(request, obj):
            return {}
        return super().get_prepopulated_fields(request, obj)

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
class TenantAPIKeyAdmin(TenantScopedAdmin):
    """Keys of the tenants the user owns (platform staff: all). Adding one creates it through
    `api_key_create` and shows the key once; deleting a key revokes it."""

    view_action = change_action = add_action = delete_action = Action.MANAGE_KEYS
    list_display = ["name", "prefix", "tenant", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", ("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "prefix", "tenant__name"]
    list_select_related = ["tenant"]
    readonly_fields = ["tenant", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["hashed_key"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("tenant")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = APIKeyCreateForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["tenant", "name"]
        return list(self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            return  # every field of a key is read-only
        api_key, raw_key = api_key_create(
            tenant=form.cleaned_data["tenant"], name=form.cleaned_data["name"]
        )
        obj.pk = api_key.pk
        obj.__dict__.update(api_key.__dict__)
        messages.warning(
            request,
            "Copy this API key now and keep it secret; it is not shown again (send it as "
            f"“Authorization: Api-Key <key>”): {raw_key}",
        )

    def delete_model(self, request: HttpRequest, obj: TenantAPIKey) -> None:
        api_key_revoke(api_key=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key)


@admin.register(TenantMembership)
class TenantMembershipAdmin(TenantScopedAdmin):
    """Who may log in to a tenant, and as what. Owners change roles and remove members; people
    join through invitations (see TenantInvitationAdmin)."""

    view_action = change_action = delete_action = Action.MANAGE_MEMBERS
    add_action = None
    form = MemberChangeForm
    list_display = ["user", "user_name", "role", "tenant", "invited_by", "created_at"]
    list_filter = ["role", ("tenant", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["user", "tenant", "invited_by"]
    search_fields = ["user__username", "user__first_name", "user__last_name"]
    fields = ["user", "tenant", "role", "invited_by", "created_at"]
    readonly_fields = ["user", "tenant", "invited_by", "created_at"]

    def get_queryset(self, request: HttpRequest) -> Any:
        """With what the rows and the page title show (the changelist then skips
        `list_select_related`)."""
        return super().get_queryset(request).select_related("user", "tenant", "invited_by")

    @admin.display(description="Name", ordering="user__first_name")
    def user_name(self, obj: TenantMembership) -> str:
        return obj.user.get_full_name()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """`MemberChangeForm.clean` changed the role through `member_update` (so a refusal
        lands on the form); nothing is left to save."""

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple:
        """The last owner of a tenant is listed as protected: Django then refuses the
        deletion and says why, on the page and for the bulk action alike."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        protected = list(protected) + [
            f"{membership}: the last owner of {membership.tenant} (make someone else owner first)"
            for membership in objs
            if member_is_last_owner(membership=membership)
        ]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: TenantMembership) -> None:
        member_remove(membership=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for membership in queryset:
            member_remove(membership=membership)


@admin.register(TenantInvitation)
class TenantInvitationAdmin(TenantScopedAdmin):
    """Invitations to join a tenant. Saving one shows its one-time link, once; deleting a
    pending one withdraws it."""

    view_action = add_action = delete_action = Action.MANAGE_MEMBERS
    change_action = None
    form = InvitationForm
    list_display = ["email", "role", "tenant", "status", "invited_by", "expires_at", "created_at"]
    list_filter = ["role", ("tenant", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["tenant", "invited_by"]
    readonly_fields = ["status", "invited_by", "expires_at", "accepted_at", "accepted_by"]

    @admin.display(description="Status")
    def status(self, obj: TenantInvitation) -> str:
        return obj.status

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["tenant", "email", "role"]
        return ["tenant", "email", "role", *self.readonly_fields]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        invitation, raw_token = invitation_create(
            tenant=form.cleaned_data["tenant"],
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            invited_by=request.user,
        )
        obj.pk = invitation.pk
        obj.__dict__.update(invitation.__dict__)
        messages.warning(
            request,
            "Send this one-time link to the person you invited (valid for 7 days; it is not "
            f"shown again): {invitation_url(raw_token=raw_token)}",
        )

    def delete_model(self, request: HttpRequest, obj: TenantInvitation) -> None:
        invitation_revoke(invitation=obj)
        obj.soft_delete()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for invitation in queryset:
            self.delete_model(request, invitation)
