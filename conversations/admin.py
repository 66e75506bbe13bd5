"""Staff views of contacts, threads and messages. Conversations are read-only here; staff act
through the services (agent replies, erasure), never by editing rows."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from conversations.models import ChatThread, Contact, Message, MessageAttachment


def mask_phone(phone: str) -> str:
    """Show only the last 4 digits: `+5511988887777` -> `•••••••••7777`."""
    if not phone:
        return ""
    return "•" * max(len(phone) - 4, 0) + phone[-4:]


class ReadOnlyAdminMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Contact)
class ContactAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "masked_phone", "tenant", "opted_out_at", "erased_at", "created_at"]
    list_filter = ["tenant", "opted_out_at", "erased_at"]
    list_select_related = ["tenant"]
    search_fields = ["external_id", "id"]
    fields = [
        "id",
        "tenant",
        "name",
        "masked_phone",
        "external_id",
        "opted_in_at",
        "opt_in_source",
        "opted_out_at",
        "erasure_requested_at",
        "erased_at",
        "created_at",
    ]
    readonly_fields = fields

    @admin.display(description="Phone")
    def masked_phone(self, obj: Contact) -> str:
        return mask_phone(obj.phone)


class MessageInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Message
    fields = ["created_at", "direction", "sender", "text", "status", "error_code"]
    readonly_fields = fields
    ordering = ["created_at"]
    extra = 0
    show_change_link = True


@admin.register(ChatThread)
class ChatThreadAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "tenant",
        "channel",
        "status",
        "needs_human",
        "last_inbound_at",
        "last_activity_at",
    ]
    list_filter = ["needs_human", "status", "tenant", "channel__provider"]
    list_select_related = ["tenant", "channel"]
    search_fields = ["id", "contact__external_id"]
    readonly_fields = [
        "id",
        "tenant",
        "contact",
        "channel",
        "status",
        "needs_human",
        "handoff_reason",
        "last_activity_at",
        "last_inbound_at",
        "metadata",
        "created_at",
    ]
    fields = readonly_fields
    inlines = [MessageInline]


class AttachmentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = MessageAttachment
    fields = ["media_type", "content_type", "size_bytes", "download_status", "file"]
    readonly_fields = fields
    extra = 0


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "tenant", "direction", "sender", "status", "created_at"]
    list_filter = ["direction", "status", "sender", "tenant"]
    list_select_related = ["tenant"]
    search_fields = ["id", "provider_message_id"]
    readonly_fields = [
        "id",
        "tenant",
        "thread",
        "channel",
        "direction",
        "kind",
        "sender",
        "text",
        "status",
        "provider_message_id",
        "error_code",
        "error_detail",
        "sent_at",
        "delivered_at",
        "read_at",
        "processed_at",
        "metadata",
        "created_at",
    ]
    fields = readonly_fields
    inlines = [AttachmentInline]
