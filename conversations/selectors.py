"""Reads for the inbox: contacts, threads and messages of one tenant, with a fixed query count."""

from django.db.models import F, Prefetch, Q, QuerySet

from conversations.models import ChatThread, Contact, Message, MessageAttachment
from tenants.models import Tenant

# A contact is opted out when its latest consent event is an opt-out.
OPTED_OUT = Q(opted_out_at__isnull=False) & (
    Q(opted_in_at__isnull=True) | Q(opted_out_at__gt=F("opted_in_at"))
)


def contact_list(*, tenant: Tenant) -> QuerySet[Contact]:
    return Contact.objects.filter(tenant=tenant).order_by("-created_at", "-id")


def thread_list(*, tenant: Tenant) -> QuerySet[ChatThread]:
    """Threads with their contact (one query per page), most recent activity first."""
    return (
        ChatThread.objects.filter(tenant=tenant)
        .select_related("contact")
        .order_by(F("last_activity_at").desc(nulls_last=True), "-created_at", "-id")
    )


def message_list(*, thread: ChatThread) -> QuerySet[Message]:
    """The thread's messages with their live attachments (two queries per page)."""
    return (
        Message.objects.filter(thread=thread, tenant_id=thread.tenant_id)
        .prefetch_related(
            Prefetch(
                "attachments",
                queryset=MessageAttachment.objects.order_by("created_at", "id"),
            )
        )
        .order_by("-created_at", "-id")
    )


def thread_tenant_id(*, thread_id: object) -> object | None:
    """The tenant of a thread (None for a missing or deleted one), for binding log lines."""
    return ChatThread.objects.filter(pk=thread_id).values_list("tenant_id", flat=True).first()
