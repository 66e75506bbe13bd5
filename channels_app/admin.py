from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from channels_app.forms import ChannelForm, TestMessageForm, form_fields, provider_form_fields
from channels_app.models import ChannelInstance, ChannelTemplate, ChannelType
from channels_app.providers import providers
from channels_app.services import (
    TEST_MESSAGE_TEXT,
    TEST_SENDS_PER_WINDOW,
    TestSendThrottled,
    channel_send_test,
)
from channels_app.templates import TemplateSyncError, channel_templates_sync
from core.api_base import parse_uuid
from core.context import bind_tenant
from tenants import access
from tenants.access import Action
from tenants.admin_base import TenantScopedAdmin, TenantScopedInline

SECRETS_NOTE = (
    "Secrets are write-only and encrypted at rest: they are never shown again. On an edit, "
    "leave a secret empty to keep it."
)
CHANNEL_MEDIA_JS = ["channels_app/channel_form.js"]
CHANNEL_MEDIA_CSS = {"all": ["core/admin.css", "channels_app/channel_form.css"]}


def _channel_form_for(request: HttpRequest, form: type[ChannelForm]) -> type[ChannelForm]:
    """The form with the user's right to set platform-only settings (`api_base_url`) and the
    user a kept secret is bound to."""
    return type(
        form.__name__,
        (form,),
        {
            "may_set_platform_settings": access.can_anywhere(request.user, Action.PLATFORM),
            "kept_secret_owner": str(request.user.pk),
        },
    )


def _model_fields(fields: list[str]) -> list[str]:
    """The fields for Django's form factory: the form declares its own (one of them,
    `phone_number_id`, shares its name with the model's non-editable mirror)."""
    declared = {item.name for item in form_fields()}
    return [name for name in fields if name not in declared]


def _provider_inputs() -> list[str]:
    """Every installed provider's inputs, in order (platform-only ones apart)."""
    return [item.name for item in form_fields() if not item.field.platform_only]


def _platform_inputs() -> list[str]:
    return [item.name for item in form_fields() if item.field.platform_only]


def _provider_fieldsets() -> list[Any]:
    """One fieldset per installed provider that has inputs, shown only while it is chosen."""
    fieldsets: list[Any] = []
    for provider in providers().values():
        names = [item.name for item in provider_form_fields(provider)]
        if not names:
            continue
        note = provider.setup_note
        if any(item.field.secret for item in provider_form_fields(provider)):
            note = f"{note} {SECRETS_NOTE}".strip()
        fieldsets.append(
            (
                provider.name,
                {
                    "fields": names,
                    "classes": ["channel-provider-group", f"channel-provider-{provider.code}"],
                    "description": note,
                },
            )
        )
    return fieldsets


class ProviderListFilter(admin.SimpleListFilter):
    """By provider, named as the registry names them."""

    title = "provider"
    parameter_name = "provider"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(code, provider.name or code) for code, provider in providers().items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(provider=self.value()) if self.value() else queryset


def _secrets_set(obj: ChannelInstance | None) -> str:
    names = sorted((obj.secrets or {}) if obj is not None and obj.pk else {})
    return ", ".join(names) if names else "none"


def webhook_url(provider_code: str = "") -> str:
    """The URL to paste into the provider's console: the shared WhatsApp webhook, or the
    provider's own path where it has one (Instagram's `/api/webhooks/instagram`)."""
    provider = providers().get(provider_code) if provider_code else None
    if provider is not None and provider.webhook_path:
        path = reverse("webhook-provider", kwargs={"name": provider.webhook_path})
        return f"{settings.PUBLIC_BASE_URL}{path}"
    return f"{settings.PUBLIC_BASE_URL}{reverse('webhook-whatsapp')}"


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
    readonly_fields = ["secrets_set"]
    show_change_link = True

    class Media:
        js = CHANNEL_MEDIA_JS
        css = CHANNEL_MEDIA_CSS

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [
            "provider",
            "identifier",
            "phone_number",
            *_provider_inputs(),
            "secrets_set",
            "is_active",
        ]
        if access.can_anywhere(request.user, Action.PLATFORM):
            fields[-1:-1] = _platform_inputs()
        return fields

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        kwargs["form"] = _channel_form_for(request, self.form)
        fields = kwargs.get("fields") or flatten_fieldsets(self.get_fieldsets(request, obj))
        kwargs["fields"] = _model_fields(fields)
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="Secrets set")
    def secrets_set(self, obj: ChannelInstance) -> str:
        return _secrets_set(obj)


@admin.register(ChannelInstance)
class ChannelAdmin(TenantScopedAdmin):
    form = ChannelForm
    change_form_template = "admin/channels_app/channelinstance/change_form.html"
    list_display = [
        "identifier",
        "tenant",
        "provider_name",
        "phone_number",
        "is_active",
        "created_at",
    ]
    list_filter = [
        ProviderListFilter,
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

    readonly_fields = ["id", "secrets_set", "created_at", "updated_at"]

    class Media:
        js = CHANNEL_MEDIA_JS
        css = CHANNEL_MEDIA_CSS

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        fieldsets: list[Any] = [
            (None, {"fields": ["tenant", "provider", "identifier", "phone_number", "is_active"]}),
            *_provider_fieldsets(),
        ]
        if access.can_anywhere(request.user, Action.PLATFORM):
            fieldsets.append(("Platform staff", {"fields": _platform_inputs()}))
        record = ["id", "secrets_set", "created_at", "updated_at"]
        if obj is not None:
            fieldsets.append(("Record", {"fields": record, "classes": ["collapse"]}))
        return fieldsets

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        kwargs["form"] = _channel_form_for(request, self.form)
        if kwargs.get("fields") is not None or "fields" not in kwargs:
            fields = kwargs.get("fields") or flatten_fieldsets(self.get_fieldsets(request, obj))
            kwargs["fields"] = _model_fields(fields)
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None and "tenant" in form.base_fields:  # absent on a read-only page
            form.base_fields["tenant"].disabled = True
        return form

    @admin.display(description="Secrets set")
    def secrets_set(self, obj: ChannelInstance) -> str:
        return _secrets_set(obj)

    @admin.display(description="provider", ordering="provider")
    def provider_name(self, obj: ChannelInstance) -> str:
        """The provider's name (its code, marked, when it is no longer installed)."""
        if obj.provider not in providers():
            return f"{obj.provider} (not installed)"
        return obj.get_provider_display()

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        context["channel_setup"] = self._setup_context(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _setup_context(self, request: HttpRequest, obj: ChannelInstance | None) -> dict[str, Any]:
        """What the "Connect the provider" panel shows. META_VERIFY_TOKEN itself only to
        platform staff (it is the platform's, shared by every tenant)."""
        platform = access.can_anywhere(request.user, Action.PLATFORM)
        saved = obj is not None and obj.pk is not None
        return {
            "webhook_url": webhook_url(obj.provider if saved else ""),
            "instagram_webhook_url": webhook_url("instagram"),
            "provider": obj.provider if saved else "",
            "verify_token_configured": bool(settings.META_VERIFY_TOKEN),
            "verify_token": settings.META_VERIFY_TOKEN if platform else "",
            "test_message_url": (
                reverse("admin:channels_app_channelinstance_test_message", args=[obj.pk])
                if saved
                and obj.channel_type == ChannelType.WHATSAPP  # a test goes to a phone number
                and access.can(request.user, Action.MANAGE, obj.tenant)
                else ""
            ),
            "templates_url": (
                reverse("admin:channels_app_channeltemplate_changelist")
                + f"?channel__id__exact={obj.pk}"
                if saved
                else ""
            ),
            "templates_count": obj.templates.count() if saved else 0,
            "sync_templates_url": (
                reverse("admin:channels_app_channelinstance_sync_templates", args=[obj.pk])
                if saved
                and access.can(request.user, Action.MANAGE, obj.tenant)
                and getattr(providers().get(obj.provider), "supports_templates", False)
                else ""
            ),
        }

    def get_urls(self) -> list:
        custom = [
            path(
                "<uuid:object_id>/test-message/",
                self.admin_site.admin_view(self.test_message_view),
                name="channels_app_channelinstance_test_message",
            ),
            path(
                "<uuid:object_id>/sync-templates/",
                self.admin_site.admin_view(self.sync_templates_view),
                name="channels_app_channelinstance_sync_templates",
            ),
        ]
        return custom + super().get_urls()

    def sync_templates_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        """POST: sync the channel's message templates from its provider, then show them (or
        the provider's reason). Another tenant's channel is a 404; without MANAGE, a 403."""
        channel = self.get_object(request, str(object_id))
        if not self.has_change_permission(request, channel):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        bind_tenant(channel.tenant_id)
        try:
            report = channel_templates_sync(channel=channel)
        except TemplateSyncError as exc:
            self.message_user(
                request,
                f"The templates could not be synced ({exc.code}): {exc}",
                level=messages.ERROR,
            )
        else:
            self.message_user(
                request,
                f"Templates synced: {report.created} new, {report.updated} updated, "
                f"{report.gone} no longer listed by the provider.",
                level=messages.SUCCESS,
            )
            self.log_change(request, channel, "Synced its message templates.")
        changelist = reverse("admin:channels_app_channeltemplate_changelist")
        return HttpResponseRedirect(f"{changelist}?channel__id__exact={channel.pk}")

    def test_message_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        """Send a short text from the channel to a number the owner gives, and show what the
        provider answered. Another tenant's channel is a 404; without MANAGE, a 403."""
        channel = self.get_object(request, str(object_id))
        if not self.has_change_permission(request, channel):
            raise PermissionDenied
        bind_tenant(channel.tenant_id)
        form = TestMessageForm(request.POST or None)
        outcome = None
        if request.method == "POST" and form.is_valid():
            try:
                outcome = channel_send_test(channel=channel, to_phone=form.cleaned_data["to_phone"])
            except TestSendThrottled:
                form.add_error(
                    None,
                    f"At most {TEST_SENDS_PER_WINDOW} test messages per channel every 10 "
                    "minutes: try again later.",
                )
            except ValidationError as exc:
                form.add_error("to_phone", exc.messages)
            else:
                summary = "accepted" if outcome.accepted else f"refused ({outcome.code})"
                self.log_change(request, channel, f"Sent a test message: {summary}.")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Send a test message",
            "channel": channel,
            "original": channel,
            "form": form,
            "outcome": outcome,
            "text": TEST_MESSAGE_TEXT,
            "provider_label": channel.get_provider_display(),
        }
        return TemplateResponse(
            request, "admin/channels_app/channelinstance/test_message.html", context
        )

    def save_model(self, request: HttpRequest, obj: ChannelInstance, form: Any, change: bool):
        tenant = obj.tenant if change else form.cleaned_data["tenant"]
        saved = form.save_through_services(tenant=tenant)
        obj.pk = saved.pk
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request: HttpRequest, obj: ChannelInstance) -> None:
        obj.soft_delete()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        queryset.soft_delete()


@admin.register(ChannelTemplate)
class ChannelTemplateAdmin(TenantScopedAdmin):
    """The templates each channel's provider approved (or not), as last synced: read-only
    (they are the provider's; **Sync templates** on a channel's page asks it again)."""

    change_action = None
    add_action = None
    delete_action = None
    list_display = ["name", "language", "category", "status", "sendable", "channel", "synced_at"]
    list_filter = ["status", "category", ("channel", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "content_sid"]
    list_select_related = ["channel", "channel__tenant"]
    readonly_fields = [
        "channel",
        "name",
        "language",
        "category",
        "status",
        "content_sid",
        "provider_template_id",
        "body",
        "components",
        "parameters",
        "named",
        "rejection_reason",
        "synced_at",
        "gone_at",
    ]
    fields = readonly_fields
    change_list_template = "admin/channels_app/channeltemplate/change_list.html"

    @admin.display(boolean=True, description="Sendable")
    def sendable(self, obj: ChannelTemplate) -> bool:
        return obj.sendable

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """With a **Sync templates** button when the list shows one channel the user manages."""
        extra_context = dict(extra_context or {})
        channel_id = request.GET.get("channel__id__exact", "")
        channel = (
            ChannelInstance.objects.filter(pk=channel_id).select_related("tenant").first()
            if parse_uuid(channel_id)
            else None
        )
        if channel is not None and access.can(request.user, Action.MANAGE, channel.tenant):
            extra_context["sync_channel"] = channel
            extra_context["sync_templates_url"] = reverse(
                "admin:channels_app_channelinstance_sync_templates", args=[channel.pk]
            )
        return super().changelist_view(request, extra_context)
