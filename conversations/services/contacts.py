"""Contacts found by phone or WhatsApp user id through blind indexes, and threads per contact
and channel."""

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Subquery
from django.utils import timezone

from channels_app.models import ChannelInstance
from conversations.models import ChatThread, Contact, ThreadStatus
from conversations.services.process import contact_threads_lock
from core.crypto import (
    blind_index,
    ig_user_lookup,
    name_index,
    normalize_ig_user_id,
    normalize_phone,
    normalize_wa_user_id,
    phone_lookup,
    wa_user_lookup,
)
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def contact_external_id(provider_id: str) -> str:
    """A stable pseudonymous id for a WhatsApp id (the phone number's digits, or a WhatsApp
    business-scoped user id for a person without a visible number).

    Storing the WhatsApp id itself would put the phone number in clear next to its encrypted
    copy, so the contact's `external_id` is a keyed hash of it: the same for the same number
    (or user id) on every channel, meaningless without `PII_LOOKUP_KEY`. A user id is hashed
    whole, so `US.1234` and the phone `+1234` never share an external id.
    """
    user_id = normalize_wa_user_id(provider_id)
    if user_id:
        return "wa_" + blind_index(user_id, purpose="external-user-id")[:32]
    digits = "".join(ch for ch in provider_id if ch.isdigit()) or provider_id
    return "wa_" + blind_index(digits, purpose="external-id")[:32]


def contact_instagram_external_id(ig_user_id: str) -> str:
    """The pseudonymous `external_id` of an Instagram-scoped user id (its own hash space:
    never equal to a WhatsApp contact's)."""
    return "ig_" + blind_index(ig_user_id, purpose="external-ig-user-id")[:32]


def contact_instagram_get_or_create(
    *, tenant_id: object, ig_user_id: str, name: str = ""
) -> tuple[Contact, bool]:
    """The tenant's live contact with this Instagram-scoped user id, created when missing.
    Safe under races (the loser of the insert race reads the winner's row).

    Found only by the id's own blind index, so an Instagram contact is never a WhatsApp
    contact (no phone, no WhatsApp user id, no merge). Raises ValueError for an id that is
    not one (`normalize_ig_user_id`)."""
    ig_user_id = normalize_ig_user_id(ig_user_id)
    if not ig_user_id:
        raise ValueError("A contact needs an Instagram-scoped user id.")
    lookup = ig_user_lookup(ig_user_id)
    contact = Contact.objects.filter(tenant_id=tenant_id, ig_user_lookup=lookup).first()
    if contact is not None:
        _contact_rename(contact=contact, name=name)
        return contact, False
    try:
        with transaction.atomic():
            created = Contact.objects.create(
                tenant_id=tenant_id,
                ig_user_id=ig_user_id,
                ig_user_lookup=lookup,
                name=name,
                external_id=contact_instagram_external_id(ig_user_id),
            )
            return created, True
    except IntegrityError:
        return Contact.objects.get(tenant_id=tenant_id, ig_user_lookup=lookup), False


def contact_get_or_create(
    *,
    tenant: Tenant,
    phone: str = "",
    name: str = "",
    external_id: str = "",
    user_id: str = "",
) -> tuple[Contact, bool]:
    """Find the tenant's live contact with this phone and/or WhatsApp user id, or create it.
    Safe under races.

    Lookups use the HMAC blind indexes, never the encrypted values. When both are given they
    end up on one contact: a contact known by only one of them gets the other; two contacts
    (one found by each) are merged into one (`_contacts_merge`). A different phone or user
    id stored on the found contact is replaced by the new one (a person's number or id
    changed). `external_id` (the provider's id for the person; defaults to the phone, else the
    user id) is stored only as a pseudonym (`contact_external_id`). A non-empty `name` that
    differs from the stored one replaces it (WhatsApp profile names change). Raises ValueError
    when neither a valid phone nor a valid user id is given.
    """
    phone = normalize_phone(phone)
    user_id = normalize_wa_user_id(user_id)
    if not phone and not user_id:
        raise ValueError("A contact needs a phone number or a WhatsApp user id.")
    for attempt in range(3):
        try:
            with transaction.atomic():
                contact, created = _contact_find_or_link(
                    tenant=tenant,
                    phone=phone,
                    user_id=user_id,
                    name=name,
                    external_id=external_id,
                )
        except IntegrityError:
            if attempt == 2:
                raise
            continue  # a concurrent delivery created or linked it first: look again
        if not created:
            _contact_rename(contact=contact, name=name)
        return contact, created
    raise AssertionError("unreachable")


def _contact_find_or_link(
    *, tenant: Tenant, phone: str, user_id: str, name: str, external_id: str
) -> tuple[Contact, bool]:
    """One attempt of `contact_get_or_create`; requires a transaction. Raises IntegrityError
    when a concurrent delivery took a blind index first, or changed the contacts to merge
    (the caller looks again)."""
    p_lookup = phone_lookup(phone) if phone else None
    u_lookup = wa_user_lookup(user_id) if user_id else None
    live = Contact.objects.filter(tenant=tenant)
    by_phone = live.filter(phone_lookup=p_lookup).first() if p_lookup else None
    by_user = live.filter(wa_user_lookup=u_lookup).first() if u_lookup else None
    if by_phone is not None and by_user is not None and by_phone.pk != by_user.pk:
        keep, gone = _lock_for_merge(by_phone.pk, by_user.pk, p_lookup=p_lookup, u_lookup=u_lookup)
        contact: Contact | None = _contacts_merge(keep=keep, gone=gone)
    else:
        contact = by_phone or by_user
    if contact is None:
        created = Contact.objects.create(
            tenant=tenant,
            phone=phone,
            phone_lookup=p_lookup,
            wa_user_id=user_id,
            wa_user_lookup=u_lookup,
            name=name,
            external_id=contact_external_id(external_id or phone or user_id),
        )
        return created, True
    changed: list[str] = []
    if p_lookup and contact.phone_lookup != p_lookup:
        contact.phone, contact.phone_lookup = phone, p_lookup
        changed += ["phone", "phone_lookup"]
    if u_lookup and contact.wa_user_lookup != u_lookup:
        contact.wa_user_id, contact.wa_user_lookup = user_id, u_lookup
        changed += ["wa_user_id", "wa_user_lookup"]
    if changed:
        with transaction.atomic():
            contact.save(update_fields=[*changed, "updated_at"])
        logger.info(
            "contact identity linked",
            extra={"contact_id": str(contact.pk), "fields": ",".join(changed[::2])},
        )
    return contact, False


def _lock_for_merge(
    keep_id: object, gone_id: object, *, p_lookup: str | None, u_lookup: str | None
) -> tuple[Contact, Contact]:
    """Lock the two contacts' threads, then the contacts (the order inbound processing and
    erasure lock them: thread, then contact), and return them as they are now. Raises
    IntegrityError when either no longer holds the blind index it was found by."""
    ids = [keep_id, gone_id]
    # FOR NO KEY UPDATE: a concurrent insert of a message only needs KEY SHARE on its thread,
    # so it never deadlocks against a merge (PostgreSQL; elsewhere a plain lock).
    contact_threads_lock(contact_ids=ids, no_key=True)
    locked = {
        c.pk: c for c in Contact.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    }
    keep, gone = locked.get(keep_id), locked.get(gone_id)
    if (
        keep is None
        or gone is None
        or keep.phone_lookup != p_lookup
        or gone.wa_user_lookup != u_lookup
    ):
        raise IntegrityError("the contacts to merge changed meanwhile")
    return keep, gone


def _contacts_merge(*, keep: Contact, gone: Contact) -> Contact:
    """Fold `gone` into `keep` (one person who was known by a phone on one contact and by a
    WhatsApp user id on another): `gone`'s threads move to `keep` (where `keep` already has a
    thread on the channel, the messages and notes move into it and the emptied thread is
    soft-deleted, its waiting flow session interrupted), consent takes the latest of both,
    `keep` takes `gone`'s name if it has none; `gone` is soft-deleted with its PII and blind
    indexes cleared. Requires a transaction holding both contacts and their threads FOR
    UPDATE (`_lock_for_merge`)."""
    now = timezone.now()
    for thread in ChatThread.objects.filter(contact=gone):
        target = ChatThread.objects.filter(contact=keep, channel_id=thread.channel_id).first()
        if target is None:
            ChatThread.objects.filter(pk=thread.pk).update(contact=keep, updated_at=now)
            continue
        _thread_fold(thread, target, now=now)
    fields = ["updated_at", *_consent_and_name_fold(keep, gone)]
    gone_user_id, gone_user_lookup = gone.wa_user_id, gone.wa_user_lookup
    Contact.objects.filter(pk=gone.pk).update(
        external_id="",
        phone="",
        phone_lookup=None,
        wa_user_id="",
        wa_user_lookup=None,
        name="",
        name_index="",
        deleted_at=now,
        updated_at=now,
    )
    if not keep.wa_user_lookup and gone_user_lookup:
        keep.wa_user_id, keep.wa_user_lookup = gone_user_id, gone_user_lookup
        fields += ["wa_user_id", "wa_user_lookup"]
    keep.save(update_fields=fields)
    logger.info(
        "contacts merged", extra={"contact_id": str(keep.pk), "merged_contact_id": str(gone.pk)}
    )
    return keep


def _thread_fold(thread: ChatThread, target: ChatThread, *, now: datetime) -> None:
    """Move a merged contact's thread into the kept contact's thread on the same channel: its
    messages, notes, flow runs and handoffs follow; its waiting flow session is interrupted;
    the emptied thread is soft-deleted. Part of `_contacts_merge` (its locks held)."""
    from conversations.models import Handoff, HandoffSource, Message, ThreadNote
    from conversations.services.handoffs import handoff_end, handoff_start
    from flows.models import FlowSession, SessionStatus

    Message.all_objects.filter(thread=thread).update(thread=target, updated_at=now)
    ThreadNote.all_objects.filter(thread=thread).update(thread=target, updated_at=now)
    FlowSession.objects.filter(thread=thread, status=SessionStatus.WAITING).update(
        status=SessionStatus.INTERRUPTED, ended_at=now, wait_expires_at=None, updated_at=now
    )
    # Everything the emptied thread holds about the person follows them, so the kept
    # contact's export and erasure cover it: flow runs (their answers) and handoffs.
    FlowSession.all_objects.filter(thread=thread).update(thread=target, updated_at=now)
    if Handoff.objects.filter(thread=target, ended_at__isnull=True).exists():
        handoff_end(thread_ids=[thread.pk], now=now)
    Handoff.objects.filter(thread=thread).update(thread=target, updated_at=now)
    times = [t for t in (target.last_activity_at, thread.last_activity_at) if t]
    inbound = [t for t in (target.last_inbound_at, thread.last_inbound_at) if t]
    needs_human = target.needs_human or thread.needs_human
    ChatThread.objects.filter(pk=target.pk).update(
        last_activity_at=max(times) if times else None,
        last_inbound_at=max(inbound) if inbound else None,
        needs_human=needs_human,
        updated_at=now,
    )
    if needs_human and target.status == ThreadStatus.OPEN:
        handoff_start(thread=target, source=HandoffSource.AGENT, now=now)  # if none is open
    ChatThread.objects.filter(pk=thread.pk).update(deleted_at=now, updated_at=now)


def _consent_and_name_fold(keep: Contact, gone: Contact) -> list[str]:
    """Consent takes the latest of both contacts, and `keep` takes `gone`'s name if it has
    none; returns the fields of `keep` changed (not saved)."""
    fields: list[str] = []
    if gone.opted_out_at and (keep.opted_out_at is None or gone.opted_out_at > keep.opted_out_at):
        keep.opted_out_at, keep.opt_out_source = gone.opted_out_at, gone.opt_out_source
        fields += ["opted_out_at", "opt_out_source"]
    if gone.opted_in_at and (keep.opted_in_at is None or gone.opted_in_at > keep.opted_in_at):
        keep.opted_in_at, keep.opt_in_source = gone.opted_in_at, gone.opt_in_source
        fields += ["opted_in_at", "opt_in_source"]
    if not keep.name and gone.name:
        keep.name = gone.name
        fields += ["name", "name_index"]
    return fields


@transaction.atomic
def contact_user_id_change(
    *, tenant_id: object, previous_user_id: str, user_id: str
) -> Contact | None:
    """The tenant's contact known by `previous_user_id` is known by `user_id` from now on
    (WhatsApp's `user_changed_user_id`); returns it, or None when there is none to change.

    Idempotent (a redelivery finds no contact with the previous id). When another contact
    already holds the new id nothing changes: the two are merged by the next message that
    carries a phone and that id together. Invalid ids change nothing."""
    old, new = wa_user_lookup(previous_user_id), wa_user_lookup(user_id)
    if not old or not new or old == new:
        return None
    live = Contact.objects.select_for_update().filter(tenant_id=tenant_id)
    contact = live.filter(wa_user_lookup=old).first()
    if contact is None or live.filter(wa_user_lookup=new).exists():
        return None
    contact.wa_user_id, contact.wa_user_lookup = normalize_wa_user_id(user_id), new
    try:
        with transaction.atomic():
            contact.save(update_fields=["wa_user_id", "wa_user_lookup", "updated_at"])
    except IntegrityError:
        return None  # a message from the new id created its contact meanwhile: merged later
    logger.info("contact user id changed", extra={"contact_id": str(contact.pk)})
    return contact


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
    phone: str = "",
    name: str = "",
    external_id: str = "",
    inbound_at: datetime | None = None,
    user_id: str = "",
    ig_user_id: str = "",
) -> tuple[ChatThread, bool]:
    """The thread (with its contact loaded) that an inbound message from `phone` and/or
    WhatsApp `user_id` belongs to, and whether the thread was created now. With
    `ig_user_id` (an Instagram channel's sender) the contact is the one with that
    Instagram-scoped id alone (`contact_instagram_get_or_create`).

    The common case, a known contact writing again on the channel with the identities already
    linked, costs one query (the thread joined with its contact by blind index); otherwise
    the contact (found, linked, merged or created as by `contact_get_or_create`) and the
    thread are found or created. Raises ValueError without a valid phone or user id.
    """
    if ig_user_id:
        if phone or user_id:
            raise ValueError("An Instagram contact has no phone number or WhatsApp user id.")
        contact, _ = contact_instagram_get_or_create(
            tenant_id=channel.tenant_id, ig_user_id=ig_user_id, name=name
        )
        return thread_get_or_create(contact=contact, channel=channel, inbound_at=inbound_at)
    normalized = normalize_phone(phone)
    user_id = normalize_wa_user_id(user_id)
    if not normalized and not user_id:
        raise ValueError("A contact needs a phone number or a WhatsApp user id.")
    # The contact is found first (a scalar subquery on the blind indexes), so the thread is an
    # exact lookup on (contact, channel) whatever the planner thinks of the tables' sizes.
    contacts = Contact.objects.filter(tenant_id=channel.tenant_id)
    if normalized:
        contacts = contacts.filter(phone_lookup=phone_lookup(normalized))
    if user_id:
        contacts = contacts.filter(wa_user_lookup=wa_user_lookup(user_id))
    thread = (
        ChatThread.objects.select_related("contact")
        .filter(contact_id=Subquery(contacts.values("pk")[:1]), channel=channel)
        .order_by()
        .first()
    )
    if thread is not None:
        _contact_rename(contact=thread.contact, name=name)
        return thread, False
    contact, _ = contact_get_or_create(
        tenant=channel.tenant,
        phone=normalized,
        user_id=user_id,
        name=name,
        external_id=external_id,
    )
    return thread_get_or_create(contact=contact, channel=channel, inbound_at=inbound_at)
