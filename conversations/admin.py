"""Staff views of contacts, threads and messages. Conversations are read-only here; staff act
through the services (agent replies, erasure), never by editing rows."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from conversations import admin_inbox
from conversations.admin_display import mask_phone
from conversations.models import ChatThread, Contact, Message, MessageAttachment
from tenants.admin_base import TenantScopedAdmin, TenantScopedInline

__all__ = ["mask_phone"]  # kept importable from here


class ReadOnlyAdminMixin:
    """Seen by whoever may view the tenant; rows are never edited here."""

    change_action = add_action = delete_action = None


@admin.register(Contact)
class ContactAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["__str__", "masked_phone", "tenant", "opted_out_at", "erased_at", "created_at"]
    list_filter = [("tenant", admin.RelatedOnlyFieldListFilter), "opted_out_at", "erased_at"]
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


@admin.register(ChatThread)
class ChatThreadAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Threads as rows, for looking things up; a thread's page is its conversation in the
    inbox (`conversations.admin_inbox`), where staff answer. Rows are never edited here."""

    list_display = [
        "__str__",
        "contact_name",
        "tenant",
        "channel",
        "status",
        "needs_human",
        "assigned_to",
        "last_inbound_at",
        "last_activity_at",
    ]
    list_filter = [
        "needs_human",
        "status",
        ("tenant", admin.RelatedOnlyFieldListFilter),
        "channel__provider",
    ]
    list_select_related = ["tenant", "channel", "contact", "assigned_to"]
    search_fields = ["id", "contact__external_id"]
    ordering = ["-needs_human", "-last_activity_at"]
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

    @admin.display(description="Contact")
    def contact_name(self, obj: ChatThread) -> str:
        return obj.contact.name or str(obj.contact_id)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """A thread is read and answered in the inbox (`/admin/inbox/<thread>/`): its page
        here leads there (404 for a thread outside the user's tenants, as everywhere)."""
        thread = self.get_object(request, object_id)
        return HttpResponseRedirect(reverse("admin:inbox-thread", args=[thread.pk]))


class AttachmentInline(ReadOnlyAdminMixin, TenantScopedInline, admin.TabularInline):
    model = MessageAttachment
    fields = ["media_type", "content_type", "size_bytes", "download_status", "file"]
    readonly_fields = fields
    extra = 0


@admin.register(Message)
class MessageAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ["__str__", "tenant", "direction", "sender", "status", "created_at"]
    list_filter = ["direction", "status", "sender", ("tenant", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["tenant"]
    search_fields = ["id", "provider_message_id"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Message], search_term: str
    ) -> tuple[QuerySet[Message], bool]:
        """A pasted WhatsApp id finds its message: ids are stored pseudonymised, so the id is
        also matched exactly (through the field) besides the usual substring search."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            results |= queryset.filter(provider_message_id=term)
        return results, may_have_duplicates

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


# --- The inbox: /admin/inbox/ and /admin/inbox/<thread>/ (conversations.admin_inbox) ----------


def _page(view):  # type: ignore[no-untyped-def]
    def bound(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return view(request, *args, admin_site=admin.site, **kwargs)

    bound.__name__ = view.__name__
    return bound


admin.site.add_page("inbox/", _page(admin_inbox.inbox_list_view), "inbox")
admin.site.add_page("inbox/<uuid:thread_id>/", _page(admin_inbox.conversation_view), "inbox-thread")
admin.site.add_page(
    "inbox/<uuid:thread_id>/updates/",
    _page(admin_inbox.conversation_updates_view),
    "inbox-thread-updates",
)
admin.site.add_page(
    "inbox/<uuid:thread_id>/act/", _page(admin_inbox.conversation_act_view), "inbox-thread-act"
)
admin.site.add_page(
    "inbox/media/<uuid:attachment_id>/", _page(admin_inbox.media_view), "inbox-media"
)
