"""Staff views of contacts, threads and messages. Conversations are read-only here; staff act
through the services (agent replies, erasure), never by editing rows."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import capfirst, slugify

from conversations import admin_inbox, selectors
from conversations.admin_display import mask_phone
from conversations.models import ChatThread, Contact, Message, MessageAttachment
from conversations.services.privacy import (
    ContactBusyError,
    ErasureReport,
    contact_erase,
    contact_export,
)
from tenants import access
from tenants.access import Action
from tenants.admin_base import TenantScopedAdmin, TenantScopedInline

__all__ = ["mask_phone"]  # kept importable from here


class ReadOnlyAdminMixin:
    """Seen by whoever may view the tenant; rows are never edited here."""

    change_action = add_action = delete_action = None


class EraseConfirmForm(forms.Form):
    """Erasure cannot be undone: the person types the word, so a stray click erases nothing."""

    WORD = "ERASE"

    confirm = forms.CharField(
        label=f"Type {WORD} to confirm",
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value != self.WORD:
            raise ValidationError(f"Type {self.WORD} (capital letters) to confirm the erasure.")
        return value


def contact_consent(contact: Contact) -> list[str]:
    """The contact's consent and erasure state as sentences, for people."""

    def at(moment: Any) -> str:
        return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"

    lines = []
    if contact.erased_at is not None:
        lines.append(f"Erased on {at(contact.erased_at)}: name, phone and messages removed.")
    elif contact.erasure_requested_at is not None:
        lines.append(f"Erasure requested on {at(contact.erasure_requested_at)}.")
    if contact.opted_in_at is not None:
        source = f" ({contact.opt_in_source})" if contact.opt_in_source else ""
        lines.append(f"Opted in on {at(contact.opted_in_at)}{source}.")
    if contact.opted_out_at is not None:
        source = f" ({contact.opt_out_source})" if contact.opt_out_source else ""
        lines.append(
            f"Opted out on {at(contact.opted_out_at)}{source}"
            + (": no automated message is sent." if contact.is_opted_out else ".")
        )
    if contact.opted_in_at is None and contact.opted_out_at is None:
        lines.append("No opt-in or opt-out recorded.")
    return lines


def variable_rows(variables: Any) -> list[tuple[str, str]]:
    """A flow session's variables as (name, value) pairs for reading: text as it is, anything
    else as JSON."""
    if not isinstance(variables, dict):
        return []
    return [
        (str(key), value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for key, value in sorted(variables.items(), key=lambda item: str(item[0]))
    ]


def contact_consent_word(contact: Contact) -> str:
    """One word or two for the contact list."""
    if contact.erased_at is not None:
        return "erased"
    if contact.is_opted_out:
        return "opted out"
    if contact.opted_in_at is not None:
        return "opted in"
    return "—"


@admin.register(Contact)
class ContactAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Contacts and the contact page: who the person is (name, masked phone, consent), every
    conversation on every channel, the flow runs and consent events on a timeline, and, for
    those allowed, the GDPR export (Action.EXPORT) and erasure (Action.ERASE).

    Rows are never edited: export and erasure go through `conversations.services.privacy`.
    Flow variables (answers typed into flows, AI answers) are shown only to those who may
    export the contact: viewers and agents read what the person wrote in the conversation,
    not a collected record of it.
    """

    list_display = [
        "display_name",
        "masked_phone",
        "consent",
        "conversations",
        "last_activity",
        "tenant",
        "created_at",
    ]
    list_display_links = ["display_name"]
    list_filter = [("tenant", admin.RelatedOnlyFieldListFilter), "opted_out_at", "erased_at"]
    list_select_related = ["tenant"]
    list_per_page = 100
    search_fields = ["external_id", "id"]
    change_form_template = "admin/conversations/contact/contact_page.html"
    # The page is the template's; these keep Django's form to safe, read-only fields (the
    # masked phone, never the phone) should anything render it.
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

    class Media:
        css = {"all": ["conversations/contacts.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Contact]:
        return selectors.contact_list_annotated(super().get_queryset(request))

    @admin.display(description="Contact", ordering="-created_at")
    def display_name(self, obj: Contact) -> str:
        return obj.name or mask_phone(obj.address) or str(obj)

    @admin.display(description="Phone")
    def masked_phone(self, obj: Contact) -> str:
        return mask_phone(obj.address)

    @admin.display(description="Consent")
    def consent(self, obj: Contact) -> str:
        word = contact_consent_word(obj)
        return format_html('<span class="consent consent-{}">{}</span>', slugify(word), word)

    @admin.display(description="Conversations", ordering="thread_count")
    def conversations(self, obj: Contact) -> int:
        return obj.thread_count  # type: ignore[attr-defined]

    @admin.display(description="Last activity", ordering="last_activity_at")
    def last_activity(self, obj: Contact) -> Any:
        return obj.last_activity_at  # type: ignore[attr-defined]

    # --- the contact page -------------------------------------------------------------------

    def get_urls(self) -> list:
        return [
            path(
                "<uuid:object_id>/export/",
                self.admin_site.admin_view(self.export_view),
                name="conversations_contact_export",
            ),
            path(
                "<uuid:object_id>/erase/",
                self.admin_site.admin_view(self.erase_view),
                name="conversations_contact_erase",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        contact = self.get_object(request, object_id)
        context = {**(extra_context or {}), **self._page_context(request, contact)}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _page_context(self, request: HttpRequest, contact: Contact) -> dict[str, Any]:
        threads = selectors.contact_threads(contact=contact)
        before = None
        if request.GET.get("before"):
            try:
                before = selectors.TimelineCursor.parse(request.GET["before"])
            except ValueError:
                messages.warning(
                    request, "That page of the history does not exist; showing the latest."
                )
        events, older = selectors.contact_timeline(contact=contact, threads=threads, before=before)
        show_variables = access.can(request.user, Action.EXPORT, contact.tenant_id)
        return {
            "contact": contact,
            "contact_phone": mask_phone(contact.address),
            "contact_consent": contact_consent(contact),
            "contact_threads": threads,
            "timeline": [
                {
                    "event": event,
                    "variables": variable_rows(event.session.variables)
                    if show_variables and event.session is not None
                    else [],
                }
                for event in events
            ],
            "timeline_older": older,
            "timeline_paged": before is not None,
            "can_export": access.can(request.user, Action.EXPORT, contact.tenant_id),
            "can_erase": access.can(request.user, Action.ERASE, contact.tenant_id),
            "show_variables": show_variables,
        }

    def _contact_for(self, request: HttpRequest, object_id: Any, action: Action) -> Contact:
        """The contact, if the user sees it (404 otherwise) and may take `action` (403)."""
        contact = get_object_or_404(
            self.get_queryset(request).select_related("tenant"), pk=object_id
        )
        if not access.can(request.user, action, contact.tenant_id):
            raise PermissionDenied
        return contact

    def export_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        """POST: everything held about the contact (`contact_export`, the API's JSON) as a file
        to download. The export decrypts everything, so it is never a GET a link could fire."""
        contact = self._contact_for(request, object_id, Action.EXPORT)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        data = contact_export(contact=contact)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
        response["Content-Disposition"] = (
            f'attachment; filename="contact-{contact.pk}-{stamp}.json"'
        )
        return response

    def erase_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        """GET: what erasing would change (a dry run) and a confirmation form. POST with the
        word typed: `contact_erase`, then back to the contact page with the report."""
        contact = self._contact_for(request, object_id, Action.ERASE)
        form = EraseConfirmForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                report = contact_erase(contact=contact)
            except ContactBusyError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return HttpResponseRedirect(request.path)
            if report.changed:
                done = "; ".join(
                    f"{label}: {count}" for label, count in erasure_rows(report) if count
                )
                self.message_user(request, f"Contact erased. {capfirst(done)}.", messages.SUCCESS)
            else:
                self.message_user(request, "Nothing left to erase.", messages.INFO)
            return HttpResponseRedirect(
                reverse("admin:conversations_contact_change", args=[contact.pk])
            )
        preview = contact_erase(contact=contact, dry_run=True)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Erase this contact's data?",
            "contact": contact,
            "form": form,
            "preview": erasure_rows(preview),
            "nothing_to_erase": not preview.changed,
        }
        return TemplateResponse(request, "admin/conversations/contact/erase.html", context)


_ERASURE_LABELS = {
    "contacts_redacted": "name, phone and external id removed",
    "messages_redacted": "message texts emptied",
    "messages_cancelled": "pending messages cancelled",
    "attachments_deleted": "attachments deleted",
    "files_deleted": "stored files deleted",
    "sessions_ended": "flow runs ended or cleared of their answers",
    "threads_closed": "conversations closed",
}


def erasure_rows(report: ErasureReport) -> list[tuple[str, int]]:
    """The report's counts as (what, how many), in the order a person reads them."""
    counts = report.counts()
    return [(label, counts[key]) for key, label in _ERASURE_LABELS.items()]


@admin.register(ChatThread)
class ChatThreadAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """Threads as rows, for looking things up; a thread's page is its conversation in the
    inbox (`conversations.admin_inbox`), where staff answer. Rows are never edited here."""

    list_display = [
        "__str__",
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
    list_select_related = ["tenant", "channel__tenant", "contact", "assigned_to"]
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
