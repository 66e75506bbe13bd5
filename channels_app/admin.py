from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest

from channels_app.forms import ChannelForm
from channels_app.models import ChannelInstance
from tenants import access
from tenants.access import Action
from tenants.admin_base import TenantScopedAdmin, TenantScopedInline


def _channel_form_for(request: HttpRequest, form: type[ChannelForm]) -> type[ChannelForm]:
    """The form with the user's right to set platform-only settings (`api_base_url`)."""
    return type(
        form.__name__,
        (form,),
        {"may_set_platform_settings": access.can_anywhere(request.user, Action.PLATFORM)},
    )


class ChannelInlineFormSet(BaseInlineFormSet):
    """Saves channels through the services. Validation runs in `clean` so errors show inline."""

    def clean(self) -> None:
        super().clean()
        seen: set[str] = set()
        for form in self.forms:
            if not getattr(form, "cleaned_data", None) or form.cleaned_data.get("DELETE"):
                continue
            identifier = form.cleaned_data.get("identifier")
            if identifier in seen:
                form.add_error("identifier", "Duplicate identifier in this form.")
            seen.add(identifier)

    def save_new(self, form: ChannelForm, commit: bool = True) -> ChannelInstance:
        return form.save_through_services(tenant=self.instance)

    def save_existing(self, form: ChannelForm, obj: ChannelInstance, commit: bool = True) -> Any:
        return form.save_through_services(tenant=self.instance)

    def delete_existing(self, obj: ChannelInstance, commit: bool = True) -> None:
        if commit:
            obj.soft_delete()


class ChannelInline(TenantScopedInline, admin.StackedInline):
    model = ChannelInstance
    form = ChannelForm
    formset = ChannelInlineFormSet
    extra = 0
    readonly_fields = ["has_secrets"]
    fields = [
        "provider",
        "identifier",
        "phone_number",
        "settings",
        "account_sid",
        "auth_token",
        "access_token",
        "has_secrets",
        "is_active",
    ]
    show_change_link = True

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        kwargs["form"] = _channel_form_for(request, self.form)
        return super().get_formset(request, obj, **kwargs)

    @admin.display(boolean=True, description="Secrets set")
    def has_secrets(self, obj: ChannelInstance) -> bool:
        return bool(obj.pk) and obj.has_secrets


@admin.register(ChannelInstance)
class ChannelAdmin(TenantScopedAdmin):
    form = ChannelForm
    list_display = ["identifier", "tenant", "provider", "phone_number", "is_active", "created_at"]
    list_filter = [
        "provider",
        "is_active",
        "channel_type",
        ("tenant", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["identifier", "tenant__name", "phone_number_id"]
    list_select_related = ["tenant"]
    autocomplete_fields = ["tenant"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """With its tenant: the channel's name (page titles, breadcrumbs) includes it."""
        return super().get_queryset(request).select_related("tenant")

    readonly_fields = ["id", "has_secrets", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["tenant", "provider", "identifier", "phone_number", "is_active"]}),
        ("Provider settings (not secret)", {"fields": ["settings"]}),
        (
            "Secrets (write-only, encrypted at rest)",
            {"fields": ["account_sid", "auth_token", "access_token", "has_secrets"]},
        ),
        ("Record", {"fields": ["id", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        kwargs["form"] = _channel_form_for(request, self.form)
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None and "tenant" in form.base_fields:  # absent on a read-only page
            form.base_fields["tenant"].disabled = True
        return form

    @admin.display(boolean=True, description="Secrets set")
    def has_secrets(self, obj: ChannelInstance) -> bool:
        return obj.has_secrets

    def save_model(self, request: HttpRequest, obj: ChannelInstance, form: Any, change: bool):
        tenant = obj.tenant if change else form.cleaned_data["tenant"]
        saved = form.save_through_services(tenant=tenant)
        obj.pk = saved.pk
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request: HttpRequest, obj: ChannelInstance) -> None:
        obj.soft_delete()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        queryset.soft_delete()
