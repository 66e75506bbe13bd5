"""Staff views of contacts, threads and messages. Conversations are read-only here; staff act
through the services (agent replies, erasure), never by editing rows."""

import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from conversations import admin_inbox
from conversations.admin_display import mask_phone
from conversations.models import ChatThread, Contact, Message, MessageAttachment, ThreadStatus
from conversations.services.outbound import (
    ContactErasedError,
    OutsideWindowError,
    message_send_agent,
    thread_window_open,
)
from conversations.services.threads import thread_update
from flows.models import FlowSession
from tenants import access
from tenants.access import Action
from tenants.admin_base import TenantScopedAdmin, TenantScopedInline

INBOX_MESSAGES = 200


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


class AgentReplyForm(forms.Form):
    text = forms.CharField(
        label="Reply",
        max_length=4096,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80, "placeholder": "Write a reply..."}),
    )


class ThreadActionForm(forms.Form):
    status = forms.ChoiceField(choices=ThreadStatus.choices, required=False)
    needs_human = forms.TypedChoiceField(
        choices=[("", "---"), ("1", "yes"), ("0", "no")],
        coerce=lambda value: value == "1",
        empty_value=None,
        required=False,
    )


@admin.register(ChatThread)
class ChatThreadAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """The staff inbox: the thread list (waiting for a human first) and, on a thread's page,
    the conversation decrypted for staff, its attachments and flow sessions, a reply box that
    sends as an agent (`message_send_agent`) and status / handoff actions (`thread_update`).

    Rows are never edited directly: every change goes through those services.
    """

    list_display = [
        "__str__",
        "contact_name",
        "tenant",
        "channel",
        "status",
        "needs_human",
        "last_inbound_at",
        "last_activity_at",
    ]
    list_filter = [
        "needs_human",
        "status",
        ("tenant", admin.RelatedOnlyFieldListFilter),
        "channel__provider",
    ]
    list_select_related = ["tenant", "channel", "contact"]
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
    change_form_template = "admin/conversations/chatthread/inbox.html"

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
        thread = self.get_object(request, object_id)
        if thread is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if request.method == "POST":
            return self._inbox_post(request, thread)
        context = {**(extra_context or {}), **self._inbox_context(request, thread)}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _inbox_context(self, request: HttpRequest, thread: ChatThread) -> dict[str, Any]:
        page, older = self._inbox_page(request, thread)
        sessions = list(
            FlowSession.objects.filter(thread=thread)
            .select_related("flow")
            .order_by("-created_at")[:10]
        )
        return {
            "inbox_messages": list(reversed(page)),
            "inbox_older_than": page[-1].pk if older else None,
            "inbox_paged": "before" in request.GET,
            "inbox_sessions": sessions,
            "inbox_contact_phone": mask_phone(thread.contact.phone),
            "inbox_window_open": thread_window_open(thread=thread),
            "inbox_can_act": access.can(request.user, Action.REPLY, thread.tenant_id),
            "reply_form": AgentReplyForm(),
            "status_choices": ThreadStatus.choices,
        }

    def _inbox_page(self, request: HttpRequest, thread: ChatThread) -> tuple[list[Message], bool]:
        """Up to INBOX_MESSAGES messages, newest first: the latest, or with `?before=<message
        id>` the ones before that message (keyset paging, so a page costs the same however
        deep). Returns the page and whether older messages exist. An unknown or malformed id
        shows the latest page with a warning."""
        queryset = Message.objects.filter(thread=thread)
        before = request.GET.get("before", "")
        if before:
            try:
                anchor = queryset.only("created_at").get(pk=uuid.UUID(before))
            except (ValueError, Message.DoesNotExist):
                messages.warning(request, "That message is not in this thread; showing the latest.")
            else:
                queryset = queryset.filter(
                    Q(created_at__lt=anchor.created_at)
                    | Q(created_at=anchor.created_at, id__lt=anchor.pk)
                )
        page = list(
            queryset.select_related("sent_by")
            .prefetch_related(
                Prefetch("attachments", queryset=MessageAttachment.objects.order_by("created_at"))
            )
            .order_by("-created_at", "-id")[: INBOX_MESSAGES + 1]
        )
        return page[:INBOX_MESSAGES], len(page) > INBOX_MESSAGES

    def _inbox_post(self, request: HttpRequest, thread: ChatThread) -> HttpResponse:
        """Replies and thread actions need the REPLY action in the thread's tenant (agents,
        owners, platform staff): a viewer cannot write to a customer."""
        if not access.can(request.user, Action.REPLY, thread.tenant_id):
            raise PermissionDenied
        if "_send_reply" in request.POST:
            form = AgentReplyForm(request.POST)
            if not form.is_valid():
                messages.error(request, "The reply is empty or longer than 4096 characters.")
            else:
                try:
                    message_send_agent(
                        thread=thread, text=form.cleaned_data["text"], user=request.user
                    )
                except ContactErasedError:
                    messages.error(request, "Not sent: the contact's data was erased.")
                except OutsideWindowError:
                    messages.error(
                        request,
                        "Not sent: the 24-hour window is closed (the contact has not written in "
                        "the last 24 hours), so WhatsApp only accepts approved templates.",
                    )
                except ValidationError as exc:
                    messages.error(request, "Not sent: " + "; ".join(exc.messages))
                else:
                    messages.success(request, "Reply queued for sending.")
        elif "_thread_action" in request.POST:
            form = ThreadActionForm(request.POST)
            if form.is_valid():
                thread_update(
                    thread=thread,
                    status=form.cleaned_data["status"] or None,
                    needs_human=form.cleaned_data["needs_human"],
                )
                messages.success(request, "Thread updated.")
            else:
                messages.error(request, "Unknown thread action.")
        return HttpResponseRedirect(request.path)


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
