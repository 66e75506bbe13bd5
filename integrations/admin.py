"""Webhook endpoints and their deliveries in the admin, for the tenant's owners (MANAGE).

An endpoint's page says loudly when it was switched off for failing, and the index shows the
number of switched-off endpoints next to "Webhook endpoints". Creating an endpoint or rotating
its secret shows the secret once, as a message (kept in the session, not in a cookie)."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from integrations.forms import WebhookEndpointForm
from integrations.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from integrations.services import (
    ReplayRefused,
    delivery_replay,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)
from tenants import access
from tenants.access import Action
from tenants.admin_base import TenantScopedAdmin, TenantScopedInline

ADMIN_CSS = {"all": ["core/admin.css", "integrations/webhooks.css"]}

_HEALTH_CLASS = {
    "switched off": "webhook-health webhook-health-off",
    "off": "webhook-health webhook-health-paused",
    "failing": "webhook-health webhook-health-failing",
    "healthy": "webhook-health webhook-health-ok",
    "new": "webhook-health",
}


def _secret_message(request: HttpRequest, secret: str) -> None:
    messages.warning(
        request,
        "Copy this signing secret now and keep it secret; it is not shown again (it signs the "
        f"X-Chatai-Signature header, see the README): {secret}",
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdmin):
    view_action = change_action = add_action = delete_action = Action.MANAGE
    form = WebhookEndpointForm
    list_display = [
        "url",
        "tenant",
        "event_list",
        "health_badge",
        "last_success_at",
        "failing_since",
    ]
    list_filter = ["is_active", ("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["url", "description", "tenant__name"]
    list_select_related = ["tenant"]
    readonly_fields = [
        "health_badge",
        "deliveries_link",
        "last_success_at",
        "last_failure_at",
        "failing_since",
        "disabled_at",
        "disabled_reason",
        "created_at",
    ]
    actions = ["rotate_secret"]

    class Media:
        css = ADMIN_CSS

    @admin.display(description="events")
    def event_list(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.events or [])

    @admin.display(description="health")
    def health_badge(self, obj: WebhookEndpoint) -> str:
        return format_html('<span class="{}">{}</span>', _HEALTH_CLASS[obj.health], obj.health)

    @admin.display(description="deliveries")
    def deliveries_link(self, obj: WebhookEndpoint) -> str:
        url = reverse("admin:integrations_webhookdelivery_changelist")
        return format_html(
            '<a href="{}?endpoint__id__exact={}">Its deliveries and their attempts</a>', url, obj.pk
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        editable = ["tenant", "url", "description", "events", "is_active"]
        if obj is None:
            return editable
        return ["tenant", *editable[1:], *self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return ["tenant", *self.readonly_fields]

    def app_list_notice(self, request: HttpRequest) -> str:
        """For the index: how many endpoints the user manages were switched off for failing."""
        switched_off = WebhookEndpoint.objects.filter(is_active=False, disabled_at__isnull=False)
        count = access.scope(switched_off, request.user, action=Action.MANAGE).count()
        if not count:
            return ""
        return f"{count} switched off"

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "GET":
            endpoint = self.get_object(request, object_id)
            if endpoint.health == "switched off":
                messages.error(request, endpoint.disabled_reason)
            elif endpoint.health == "failing":
                messages.warning(
                    request,
                    "Deliveries to this endpoint are failing; it is switched off after 24 hours "
                    "of failures. See its deliveries.",
                )
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = {
            name: form.cleaned_data[name]
            for name in ("url", "description", "events", "is_active")
            if name in form.cleaned_data
        }
        if change:
            # `obj` already holds the form's values; the service compares with the stored ones
            stored = WebhookEndpoint.objects.get(pk=obj.pk)
            updated = webhook_endpoint_update(endpoint=stored, data=data)
            obj.__dict__.update(updated.__dict__)
            return
        endpoint, secret = webhook_endpoint_create(tenant=form.cleaned_data["tenant"], **data)
        obj.pk = endpoint.pk
        obj.__dict__.update(endpoint.__dict__)
        _secret_message(request, secret)

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        return form.save(commit=False)

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        webhook_endpoint_delete(endpoint=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for endpoint in self.scope_for(request, queryset, Action.MANAGE):
            webhook_endpoint_delete(endpoint=endpoint)

    @admin.action(description="Rotate the signing secret (shown once)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet) -> None:
        for endpoint in self.scope_for(request, queryset, Action.MANAGE):
            secret = webhook_endpoint_rotate_secret(endpoint=endpoint)
            messages.warning(request, f"New signing secret for {endpoint.url}: {secret}")


class WebhookAttemptInline(TenantScopedInline, admin.TabularInline):
    model = WebhookAttempt
    view_action = Action.MANAGE
    change_action = add_action = delete_action = None
    fields = ["number", "created_at", "status_code", "error", "duration_ms", "response_snippet"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["number"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(TenantScopedAdmin):
    """Read-only: what was sent where, and how each attempt went. Replaying is an action."""

    view_action = Action.MANAGE
    change_action = add_action = delete_action = None
    inlines = [WebhookAttemptInline]
    list_display = [
        "event",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = [
        "status",
        "event",
        ("endpoint", admin.RelatedOnlyFieldListFilter),
        ("tenant", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["endpoint__url", "=event_id"]
    list_select_related = ["endpoint", "tenant"]
    fields = [
        "tenant",
        "endpoint",
        "event",
        "event_id",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "give_up_at",
        "delivered_at",
        "created_at",
    ]
    readonly_fields = fields
    actions = ["replay"]

    class Media:
        css = ADMIN_CSS

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not access.can_anywhere(request.user, Action.MANAGE):
            actions.pop("replay", None)
        return actions

    @admin.action(description="Send again now")
    def replay(self, request: HttpRequest, queryset: QuerySet) -> None:
        sent = refused = 0
        for delivery in self.scope_for(request, queryset, Action.MANAGE):
            try:
                delivery_replay(delivery=delivery)
                sent += 1
            except ReplayRefused:
                refused += 1
        if sent:
            messages.success(request, f"{sent} deliver{'y' if sent == 1 else 'ies'} sent again.")
        if refused:
            messages.error(
                request,
                f"{refused} not sent: their endpoint is switched off; switch it on first.",
            )
