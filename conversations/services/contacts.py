"""Contacts found by phone through the blind index, and threads per contact and channel."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Subquery
from django.utils import timezone

from channels_app.models import ChannelInstance
from conversations.models import ChatThread, Contact, ThreadStatus
from core.crypto import blind_index, name_index, normalize_phone, phone_lookup
from tenants.models import Tenant


def contact_external_id(provider_id: str) -> str:
    """A stable pseudonymous id for a WhatsApp id (which is the phone number's digits).

    Storing the WhatsApp id itself would put the phone number in clear next to its encrypted
    copy, so the contact's `external_id` is a keyed hash of it: the same for the same number
    on every channel, meaningless without `PII_LOOKUP_KEY`.
    """
    digits = "".join(ch for ch in provider_id if ch.isdigit()) or provider_id
    return "wa_" + blind_index(digits, purpose="external-id")[:32]


def contact_get_or_create(
    *, tenant: Tenant, phone: str, name: str = "", external_id: str = ""
) -> tuple[Contact, bool]:
    """Find the tenant's live contact with this phone, or create it. Safe under races.

    The lookup uses the HMAC blind index, never the encrypted phone. `external_id` (the
    provider's id for the person, e.g. the WhatsApp id; defaults to the phone) is stored only
    as a pseudonym (`contact_external_id`). A non-empty `name` that differs from the stored one
    replaces it (WhatsApp profile names change). Raises ValueError for a phone without digits.
    """
    normalized = normalize_phone(phone)
    if not normalized:
        raise ValueError("A contact needs a phone number.")
    lookup = phone_lookup(normalized)
    contact = Contact.objects.filter(tenant=tenant, phone_lookup=lookup).first()
    created = False
    if contact is None:
        try:
            with transaction.atomic():
                contact = Contact.objects.create(
                    tenant=tenant,
                    phone=normalized,
                    phone_lookup=lookup,
                    name=name,
                    external_id=contact_external_id(external_id or normalized),
                )
                created = True
        except IntegrityError:
            contact = Contact.objects.get(tenant=tenant, phone_lookup=lookup)
    if not created:
        _contact_rename(contact=contact, name=name)
    return contact, created


def _contact_rename(*, contact: Contact, name: str) -> None:
    """A new profile name replaces the stored one, unless the contact was erased meanwhile
    (the tombstone keeps no name)."""
    if name and contact.name != name:
        contact_rename(contact_id=contact.pk, name=name)
        contact.name = name


def contact_rename(*, contact_id: object, name: str) -> None:
    """Store a contact's new profile name; an erased contact keeps none."""
    Contact.objects.filter(pk=contact_id, erased_at__isnull=True).update(
        name=name, name_index=name_index(name), updated_at=timezone.now()
    )


def thread_get_or_create(
    *, contact: Contact, channel: ChannelInstance, inbound_at: datetime | None = None
) -> tuple[ChatThread, bool]:
    """The contact's live thread on the channel, created when missing. Safe under races.

    Two concurrent callers get the same thread: the loser of the insert race hits the
    one-live-thread constraint and reads the winner's row. A thread created for an inbound
    message (`inbound_at`) starts with that time as its last inbound and last activity.
    """
    thread = ChatThread.objects.filter(contact=contact, channel=channel).first()
    if thread is not None:
        return thread, False
    try:
        with transaction.atomic():
            thread = ChatThread.objects.create(
                tenant_id=contact.tenant_id,
                contact=contact,
                channel=channel,
                status=ThreadStatus.OPEN,
                last_activity_at=inbound_at or timezone.now(),
                last_inbound_at=inbound_at,
            )
            return thread, True
    except IntegrityError:
        return ChatThread.objects.get(contact=contact, channel=channel), False


def contact_thread_for_inbound(
    *,
    channel: ChannelInstance,
    phone: str,
    name: str = "",
    external_id: str = "",
    inbound_at: datetime | None = None,
) -> tuple[ChatThread, bool]:
    """The thread (with its contact loaded) that an inbound message from `phone` belongs to,
    and whether the thread was created now.

    The common case, a known contact writing again on the channel, costs one query (the
    thread joined with its contact by blind index); otherwise the contact and the thread are
    found or created as by `contact_get_or_create` and `thread_get_or_create`.
    """
    normalized = normalize_phone(phone)
    if not normalized:
        raise ValueError("A contact needs a phone number.")
    # The contact is found first (a scalar subquery on the blind index), so the thread is an
    # exact lookup on (contact, channel) whatever the planner thinks of the tables' sizes.
    contact_id = Contact.objects.filter(
        tenant_id=channel.tenant_id, phone_lookup=phone_lookup(normalized)
    ).values("pk")[:1]
    thread = (
        ChatThread.objects.select_related("contact")
        .filter(contact_id=Subquery(contact_id), channel=channel)
        .order_by()
        .first()
    )
    if thread is not None:
        _contact_rename(contact=thread.contact, name=name)
        return thread, False
    contact, _ = contact_get_or_create(
        tenant=channel.tenant, phone=normalized, name=name, external_id=external_id
    )
    return thread_get_or_create(contact=contact, channel=channel, inbound_at=inbound_at)
