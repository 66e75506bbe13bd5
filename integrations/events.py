"""The `data` of each webhook event, and the one call each event site makes.

Each function is called by the code where the event happens, inside its transaction, and
never raises (see `services.event_publish`). Bodies carry the tenant's own ids and data, never
a secret, a phone number or anything of another tenant: contacts are named by their id.
"""

from __future__ import annotations

from typing import Any

from integrations.models import WebhookEvent
from integrations.services import event_publish


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def message_received(message: Any, *, contact_id: object = None) -> int:
    """A new inbound message was stored (not a duplicate delivery)."""

    def data() -> dict[str, Any]:
        from conversations.models import ChatThread, MessageAttachment

        contact = contact_id
        if contact is None:
            contact = (
                ChatThread.all_objects.filter(pk=message.thread_id)
                .values_list("contact_id", flat=True)
                .first()
            )
        attachments = list(
            MessageAttachment.objects.filter(message_id=message.pk)
            .order_by("created_at", "id")
            .values("id", "media_type", "content_type", "size_bytes")
        )
        return {
            "message": {
                "id": str(message.pk),
                "direction": message.direction,
                "kind": getattr(message, "kind", "") or "",
                "text": message.text or "",
                "created_at": _iso(message.created_at),
                "attachments": [
                    {
                        "id": str(a["id"]),
                        "media_type": a["media_type"],
                        "content_type": a["content_type"],
                        "size_bytes": a["size_bytes"],
                    }
                    for a in attachments
                ],
            },
            "thread_id": str(message.thread_id),
            "contact_id": str(contact) if contact else None,
            "channel_id": str(message.channel_id),
        }

    return event_publish(
        tenant_id=message.tenant_id, event=WebhookEvent.MESSAGE_RECEIVED, data=data
    )


def message_status(message: Any) -> int:
    """An outbound message's status changed (sent, delivered, read, failed)."""

    def data() -> dict[str, Any]:
        return {
            "message": {
                "id": str(message.pk),
                "direction": message.direction,
                "status": message.status,
                "error_code": message.error_code or "",
                "sent_at": _iso(message.sent_at),
                "delivered_at": _iso(message.delivered_at),
                "read_at": _iso(message.read_at),
            },
            "thread_id": str(message.thread_id),
            "channel_id": str(message.channel_id),
        }

    return event_publish(tenant_id=message.tenant_id, event=WebhookEvent.MESSAGE_STATUS, data=data)


def _thread(thread: Any) -> dict[str, Any]:
    return {
        "id": str(thread.pk),
        "contact_id": str(thread.contact_id),
        "channel_id": str(thread.channel_id),
        "status": thread.status,
        "needs_human": thread.needs_human,
    }


def thread_handoff(thread: Any, *, reason: str, by: str) -> int:
    """The thread now waits for a human: `by` "flow" (a handoff node) or "agent"."""
    return event_publish(
        tenant_id=thread.tenant_id,
        event=WebhookEvent.THREAD_HANDOFF,
        data=lambda: {"thread": _thread(thread), "reason": reason, "by": by},
    )


def thread_closed(thread: Any) -> int:
    return event_publish(
        tenant_id=thread.tenant_id,
        event=WebhookEvent.THREAD_CLOSED,
        data=lambda: {"thread": _thread(thread)},
    )


def flow_completed(session: Any) -> int:
    """A flow session reached its end (status completed)."""

    def data() -> dict[str, Any]:
        flow = session.flow  # loaded with the session, or one query when someone listens
        return {
            "session_id": str(session.pk),
            "flow_id": flow.flow_id,
            "version": flow.version,
            "flow": str(flow.pk),
            "thread_id": str(session.thread_id),
            "handed_off": bool(session.handed_off),
            "ended_at": _iso(session.ended_at),
        }

    return event_publish(tenant_id=session.tenant_id, event=WebhookEvent.FLOW_COMPLETED, data=data)


def _consent(contact: Any, event: str, source: str) -> int:
    return event_publish(
        tenant_id=contact.tenant_id,
        event=event,
        data=lambda: {
            "contact_id": str(contact.pk),
            "source": source,
            "opted_in_at": _iso(contact.opted_in_at),
            "opted_out_at": _iso(contact.opted_out_at),
        },
    )


def contact_opted_out(contact: Any, *, source: str) -> int:
    return _consent(contact, WebhookEvent.CONTACT_OPTED_OUT, source)


def contact_opted_in(contact: Any, *, source: str) -> int:
    return _consent(contact, WebhookEvent.CONTACT_OPTED_IN, source)
