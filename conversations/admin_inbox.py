"""The staff inbox inside the admin: `/admin/inbox/` (the list) and `/admin/inbox/<thread>/`
(one conversation), with its actions, its live updates and the media it shows.

Who sees and does what comes from `tenants.access`: a thread outside the user's tenants is a
404; reading needs VIEW, every action REPLY (a viewer sees, cannot act: 403). Writes go through
the services (`message_send_agent`, `thread_update`, `thread_assign`, `thread_note_add`).

Live updates are htmx polls: the page asks every 2 seconds whether its version changed (one
query) and only then swaps the timeline in; the reply box is outside what is swapped, so
nothing the agent is typing is touched. Without JavaScript every form still works (post,
redirect back).
"""

from __future__ import annotations

import mimetypes
import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from channels_app.models import ChannelTemplate
from conversations import inbox
from conversations.admin_display import mask_phone
from conversations.failures import explain
from conversations.models import ChatThread, Message, MessageAttachment, ThreadStatus
from conversations.selectors import thread_window_open
from conversations.services.outbound import (
    ContactErasedError,
    OutsideWindowError,
    message_send_agent,
)
from conversations.services.templates import (
    OptedOutError,
    TemplatesUnavailableError,
    message_send_template,
    template_offers,
)
from conversations.services.threads import (
    thread_assign,
    thread_mark_seen,
    thread_note_add,
    thread_update,
)
from flows.models import FlowSession
from tenants import access
from tenants.access import Action
from tenants.models import Role, TenantMembership

POLL_SECONDS = 2
LIST_POLL_SECONDS = 5
# Served inline (shown in the page); anything else is a download. Never SVG or HTML, which
# could carry scripts.
_INLINE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "audio/", "video/")


def _thread_or_404(request: HttpRequest, thread_id: Any) -> ChatThread:
    return get_object_or_404(
        access.scope(ChatThread.objects.all(), request.user).select_related(
            "contact", "channel", "tenant", "assigned_to"
        ),
        pk=thread_id,
    )


def _context(request: HttpRequest, admin_site: Any, **extra: Any) -> dict[str, Any]:
    return {**admin_site.each_context(request), **extra}


# --- The list ---------------------------------------------------------------------------------


@require_GET
def inbox_list_view(request: HttpRequest, admin_site: Any) -> HttpResponse:
    filters = inbox.InboxFilters.from_query(request.GET)
    version = inbox.inbox_version(user=request.user, filters=filters)
    if request.htmx and request.GET.get("v") == version:
        return HttpResponse(status=204)
    page = inbox.inbox_threads(
        user=request.user, filters=filters, cursor=request.GET.get("after", "")
    )
    context = _context(
        request,
        admin_site,
        title="Inbox",
        page=page,
        rows=[_row(row) for row in page.rows],
        filters=filters,
        version=version,
        poll_seconds=LIST_POLL_SECONDS,
        channels=inbox.inbox_channels(user=request.user),
        statuses=[*ThreadStatus.choices, ("all", "All")],
        query_without_after=_query_without(request, "after", "v"),
        query_without_v=_query_without(request, "v"),
        now=timezone.now(),
    )
    template = "admin/inbox/_rows.html" if request.htmx else "admin/inbox/list.html"
    return TemplateResponse(request, template, context)


def _query_without(request: HttpRequest, *names: str) -> str:
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()


def _row(row: inbox.InboxRow) -> dict[str, Any]:
    thread = row.thread
    contact = thread.contact
    last = row.last_message
    return {
        "thread": thread,
        "name": contact.name or mask_phone(contact.address) or "Unknown contact",
        "assignee": person(thread.assigned_to),
        "snippet": _snippet(last),
        "last_from_contact": bool(last and last.direction == "inbound"),
        "unread": row.unread,
        "waiting_since": row.waiting_since,
        "waiting": _duration(timezone.now() - row.waiting_since) if row.waiting_since else "",
    }


def _duration(delta: Any) -> str:
    """A wait as people say it: "<1 min", "12 min", "3 h 5 min", "2 days"."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "<1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days = hours // 24
    return f"{days} day{'s' if days > 1 else ''}"


KIND_LABELS = {
    "image": "📷 Photo",
    "sticker": "Sticker",
    "audio": "🎤 Audio",
    "video": "🎬 Video",
    "document": "📄 Document",
    "location": "📍 Location",
    "contacts": "👤 Contact card",
    "flow_reply": "📝 Form answers",
    "reaction": "Reaction",
    "order": "🛒 Order",
}


def _kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def _snippet(message: Message | None) -> str:
    if message is None:
        return ""
    if message.text:
        return message.text[:120]
    return _kind_label(message.kind)


def _content_summary(message: Message) -> str:
    """One line about a message's structured content for the timeline: the names on shared
    contact cards, a reaction's emoji ('' for the other kinds)."""
    content = message.private_data or {}
    if message.kind == "contacts":
        names = [
            str((card.get("name") or {}).get("formatted_name") or "")
            for card in content.get("contacts", [])
            if isinstance(card, dict) and isinstance(card.get("name"), dict)
        ]
        return "👤 " + ", ".join(name for name in names if name) if any(names) else ""
    if message.kind == "reaction":
        emoji = (content.get("reaction") or {}).get("emoji") or ""
        return f"Reacted {emoji}" if emoji else "Removed a reaction"
    return ""


# --- One conversation -------------------------------------------------------------------------


@require_GET
def conversation_view(request: HttpRequest, thread_id: uuid.UUID, admin_site: Any) -> HttpResponse:
    thread = _thread_or_404(request, thread_id)
    can_reply = access.can(request.user, Action.REPLY, thread.tenant_id)
    before = request.GET.get("before", "")
    timeline = inbox.conversation_timeline(thread=thread, before=before)
    if timeline.anchor_missing:
        messages.warning(request, "That message is not in this thread; showing the latest.")
    if can_reply and not timeline.paged:
        thread_mark_seen(thread=thread)
    window_open = thread_window_open(thread=thread)
    context = _context(
        request,
        admin_site,
        title=_contact_label(thread),
        thread=thread,
        contact_label=_contact_label(thread),
        contact_phone=mask_phone(thread.contact.address),
        timeline=_timeline(timeline, _contact_label(thread)),
        timeline_paged=timeline.paged,
        older_than=timeline.older_than,
        version=inbox.conversation_version(thread=thread),
        poll_seconds=POLL_SECONDS,
        can_reply=can_reply,
        window_open=window_open,
        offered_templates=(template_offers(thread=thread) if can_reply and not window_open else []),
        assignees=_assignees(thread) if can_reply else [],
        assignee_label=person(thread.assigned_to),
        sessions=_sessions(
            thread, show_answers=access.can(request.user, Action.EXPORT, thread.tenant_id)
        ),
        statuses=ThreadStatus,
    )
    return TemplateResponse(request, "admin/inbox/conversation.html", context)


@require_GET
def conversation_updates_view(
    request: HttpRequest, thread_id: uuid.UUID, admin_site: Any
) -> HttpResponse:
    """The timeline and the thread's state, when they changed since version `v` (else 204)."""
    thread = _thread_or_404(request, thread_id)
    version = inbox.conversation_version(thread=thread)
    if request.GET.get("v") == version:
        return HttpResponse(status=204)
    return _updates(request, thread, admin_site, version)


def _updates(
    request: HttpRequest, thread: ChatThread, admin_site: Any, version: str
) -> HttpResponse:
    can_reply = access.can(request.user, Action.REPLY, thread.tenant_id)
    if can_reply:
        thread_mark_seen(thread=thread)
    timeline = inbox.conversation_timeline(thread=thread)
    context = _context(
        request,
        admin_site,
        thread=thread,
        contact_label=_contact_label(thread),
        contact_phone=mask_phone(thread.contact.address),
        sessions=_sessions(
            thread, show_answers=access.can(request.user, Action.EXPORT, thread.tenant_id)
        ),
        timeline=_timeline(timeline, _contact_label(thread)),
        older_than=timeline.older_than,
        version=version,
        poll_seconds=POLL_SECONDS,
        can_reply=can_reply,
        window_open=thread_window_open(thread=thread),
        assignees=_assignees(thread) if can_reply else [],
        assignee_label=person(thread.assigned_to),
        statuses=ThreadStatus,
        oob=True,
    )
    return TemplateResponse(request, "admin/inbox/_updates.html", context)


def _contact_label(thread: ChatThread) -> str:
    contact = thread.contact
    return contact.name or mask_phone(contact.address) or "Unknown contact"


def _assignees(thread: ChatThread) -> list[Any]:
    """Who can be given the thread: the tenant's owners and agents."""
    members = TenantMembership.objects.filter(
        tenant_id=thread.tenant_id, role__in=[Role.OWNER, Role.AGENT]
    ).select_related("user")
    users = {member.user for member in members if member.user.is_active}
    if thread.assigned_to is not None:
        users.add(thread.assigned_to)
    return sorted(
        ({"pk": user.pk, "label": person(user)} for user in users),
        key=lambda entry: entry["label"].lower(),
    )


def _sessions(thread: ChatThread, *, show_answers: bool) -> list[dict[str, Any]]:
    """The thread's latest flow runs. What the contact answered in them is shown only to
    those who may export the contact's data (as on the contact's page): answers collected out
    of context are the export's, not every reader's."""
    sessions = FlowSession.objects.filter(thread=thread).select_related("flow")
    return [
        {
            "session": session,
            "variables": sorted((session.variables or {}).items()) if show_answers else [],
        }
        for session in sessions.order_by("-created_at")[:10]
    ]


def person(user: Any) -> str:
    """How a staff member is named on the page."""
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def _sender(message: Message, contact_label: str) -> str:
    if message.direction == "inbound":
        return contact_label
    if message.sender == "agent":
        return person(message.sent_by) or "Agent"
    if message.sender == "business":
        return "WhatsApp Business app"
    return "AI assistant" if message.sender == "ai" else "Flow"


def _timeline(timeline: inbox.Timeline, contact_label: str = "Contact") -> list[dict[str, Any]]:
    """What the timeline template shows for each item: a note, or a message with its sender,
    kind, failure and attachments."""
    rows = []
    for item in timeline.items:
        row: dict[str, Any] = {
            "item": item,
            "message": item.message,
            "note": item.note,
            "new_day": item.new_day,
            "author": (person(item.note.author) or "staff") if item.note is not None else "",
        }
        if item.message is not None:
            row.update(_message_row(item.message, contact_label))
        else:
            row.update(_EMPTY_MESSAGE_ROW)
        rows.append(row)
    return rows


_EMPTY_MESSAGE_ROW: dict[str, Any] = {
    "sender": "",
    "raw_type": "",
    "kind_label": "",
    "summary": "",
    "choice": "",
    "failure": None,
    "retried": False,
    "location": None,
    "attachments": [],
}


def _message_row(message: Message, contact_label: str) -> dict[str, Any]:
    metadata = message.metadata or {}
    return {
        "sender": _sender(message, contact_label),
        "raw_type": metadata.get("provider_type") or metadata.get("raw_type") or "unknown",
        "kind_label": _kind_label(message.kind),
        "summary": _content_summary(message),
        "choice": metadata.get("interactive_id", ""),
        "failure": explain(message.error_code) if message.status == "failed" else None,
        "retried": bool(metadata.get("retried_as")),
        "location": (message.private_data or {}).get("location"),
        "attachments": [
            {
                "attachment": a,
                "inline": _inline(a.content_type),
                "url": _media_url(a),
                "filename": (a.metadata or {}).get("filename") or "Document",
            }
            for a in message.attachments.all()
        ],
    }


def _media_url(attachment: MessageAttachment) -> str:
    if not attachment.file:
        return ""
    return reverse("admin:inbox-media", args=[attachment.pk])


def _inline(content_type: str) -> bool:
    return any(content_type.startswith(prefix) for prefix in _INLINE_TYPES)


# --- Acting -----------------------------------------------------------------------------------


@require_POST
def conversation_act_view(
    request: HttpRequest, thread_id: uuid.UUID, admin_site: Any
) -> HttpResponse:
    """Every action on a conversation: reply, note, assign, hand over, close, reopen, retry.
    Needs REPLY in the thread's tenant (403 otherwise)."""
    thread = _thread_or_404(request, thread_id)
    if not access.can(request.user, Action.REPLY, thread.tenant_id):
        raise PermissionDenied
    action = request.POST.get("action", "")
    failed = False
    try:
        _act(request, thread, action)
    except ValidationError as exc:
        failed = True
        messages.error(request, "; ".join(exc.messages))
    if request.htmx:
        thread = _thread_or_404(request, thread.pk)
        response = _updates(request, thread, admin_site, inbox.conversation_version(thread=thread))
        if not failed:
            response["HX-Trigger"] = "chatai:sent"  # the composer empties itself
        return response
    return HttpResponseRedirect(reverse("admin:inbox-thread", args=[thread.pk]))


def _act(request: HttpRequest, thread: ChatThread, action: str) -> None:
    user = request.user
    if action == "reply":
        _reply(request, thread, request.POST.get("text", ""))
    elif action == "template":
        _send_template(request, thread)
    elif action == "retry":
        _retry(request, thread, _uuid(request.POST.get("message")))
    elif action == "note":
        thread_note_add(thread=thread, text=request.POST.get("text", ""), author=user)
    elif action == "assign":
        assignee_id = request.POST.get("assignee", "")
        assignee = None
        if assignee_id:
            # Only someone the page offers: the tenant's owners and agents (or the current
            # assignee). Any other id, existing or not, gets the same answer.
            offered = {entry["pk"] for entry in _assignees(thread)}
            pk = _int(assignee_id)
            assignee = get_user_model().objects.filter(pk=pk).first() if pk in offered else None
            if assignee is None:
                raise ValidationError("That person cannot be given this conversation.")
        thread_assign(thread=thread, assignee=assignee)
        messages.success(request, "Assigned." if assignee else "Unassigned.")
    elif action == "assign_me":
        thread_assign(thread=thread, assignee=user)
        messages.success(request, "Assigned to you.")
    elif action == "resume":
        thread_update(thread=thread, needs_human=False)
        messages.success(request, "Automation resumed: the flows answer this contact again.")
    elif action == "takeover":
        thread_update(thread=thread, needs_human=True)
        messages.success(request, "Automation paused: you are answering this contact.")
    elif action == "close":
        thread_update(thread=thread, status=ThreadStatus.CLOSED)
        messages.success(request, "Conversation closed.")
    elif action == "reopen":
        thread_update(thread=thread, status=ThreadStatus.OPEN)
        messages.success(request, "Conversation reopened.")
    else:
        raise ValidationError("Unknown action.")


@transaction.atomic
def _retry(request: HttpRequest, thread: ChatThread, message_id: uuid.UUID | None) -> None:
    """Send a failed message's text again, once: the failed message is locked and marked
    with the new one, so a double click, a re-post or two agents never send it twice."""
    failed = (
        Message.objects.select_for_update()
        .filter(thread=thread, pk=message_id, status="failed")
        .first()
    )
    if (
        failed is None
        or not failed.text
        or failed.kind == "template"  # its text is the rendered template, not a free text
        or (failed.metadata or {}).get("retried_as")
        or not explain(failed.error_code).retry
    ):
        raise ValidationError("That message cannot be sent again.")
    again = _reply(request, thread, failed.text)
    failed.metadata = {**(failed.metadata or {}), "retried_as": str(again.pk)}
    failed.save(update_fields=["metadata", "updated_at"])


def _reply(request: HttpRequest, thread: ChatThread, text: str) -> Message:
    try:
        return message_send_agent(thread=thread, text=text, user=request.user)
    except ContactErasedError:
        raise ValidationError("Not sent: the contact's data was erased.") from None
    except OutsideWindowError:
        raise ValidationError(
            "Not sent: the 24-hour window is closed (the contact has not written in the last "
            "24 hours), so WhatsApp only accepts approved templates."
        ) from None


def _send_template(request: HttpRequest, thread: ChatThread) -> Message:
    """The template the composer offered (`template`: its id on the thread's channel) with
    the values typed for its placeholders (`value`, in order)."""
    template = ChannelTemplate.objects.filter(
        channel_id=thread.channel_id, pk=_uuid(request.POST.get("template"))
    ).first()
    if template is None:
        raise ValidationError("That template is not one of this channel's.")
    values = request.POST.getlist("value")
    names = [str(item.get("name", "")) for item in template.parameters or []]
    if len(values) != len(names):
        raise ValidationError("Fill in every value of the template.")
    if template.content_sid:
        spec: dict[str, Any] = {
            "content_sid": template.content_sid,
            "variables": dict(zip(names, values, strict=True)),
        }
    else:
        spec = {"name": template.name, "language": template.language, "parameters": values}
    try:
        message = message_send_template(thread=thread, spec=spec, user=request.user)
    except ContactErasedError:
        raise ValidationError("Not sent: the contact's data was erased.") from None
    except (OptedOutError, TemplatesUnavailableError) as exc:
        raise ValidationError(f"Not sent: {exc}") from None
    messages.success(request, f"Template {template.name} sent.")
    return message


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _int(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


# --- Media ------------------------------------------------------------------------------------


@require_GET
def media_view(request: HttpRequest, attachment_id: uuid.UUID, admin_site: Any) -> HttpResponse:
    """Our stored copy of an attachment, for someone who may see its tenant (404 otherwise,
    and for media not stored yet). Never the provider's URL, which needs credentials and
    expires."""
    attachment = get_object_or_404(
        access.scope(MessageAttachment.objects.all(), request.user, tenant_field="message__tenant"),
        pk=attachment_id,
    )
    if not attachment.file:
        raise Http404("Not stored (yet).")
    inline = _inline(attachment.content_type)
    extension = mimetypes.guess_extension(attachment.content_type or "") or ""
    filename = (attachment.metadata or {}).get("filename") or f"{attachment.media_type}{extension}"
    response = FileResponse(
        attachment.file.open("rb"),
        content_type=attachment.content_type if inline else "application/octet-stream",
        as_attachment=not inline,
        filename=str(filename)[:150],
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
