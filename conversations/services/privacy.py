"""Data-subject rights: export everything held about a contact, and erase it.

Both functions see soft-deleted rows too (`all_objects`): data that is hidden from the inbox is
still data we hold. Neither logs anything but ids and counts.
"""

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from conversations.models import (
    ChatThread,
    Contact,
    Direction,
    Message,
    MessageAttachment,
    MessageStatus,
    ThreadNote,
    ThreadStatus,
)
from conversations.services.handoffs import handoff_end
from conversations.services.process import contact_threads_lock
from core import locks
from core.crypto import ig_user_lookup, phone_lookup, wa_user_lookup
from flows.models import FlowSession, SessionStatus
from integrations.services import webhook_deliveries_erase_contact
from tenants.models import Tenant

logger = logging.getLogger(__name__)

EXPORT_FORMAT_VERSION = 1

# Error code stored on an outbound message that was still queued when its contact was erased.
ERASED_ERROR_CODE = "contact_erased"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _id(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


# --- Finding the data subject -------------------------------------------------------------------


class ContactNotFound(Exception):
    """No (single) contact matches. The message never contains the phone number."""


def contact_find(
    *,
    tenant_id: str,
    contact_id: str | None = None,
    phone: str | None = None,
    wa_user_id: str | None = None,
    ig_user_id: str | None = None,
) -> Contact:
    """The tenant's contact by id, by phone, by WhatsApp user id or by Instagram-scoped id
    (through the blind indexes), soft-deleted included.

    Exactly one of `contact_id`, `phone`, `wa_user_id` and `ig_user_id` must be given (a
    user id is looked up like a phone, below). A phone that matches a live contact
    gives that contact; otherwise a single soft-deleted match is returned. Raises
    ContactNotFound for an unknown or malformed tenant or contact id, a phone without digits,
    another tenant's contact, or several soft-deleted matches (their ids are named).
    """
    if sum(value is not None for value in (contact_id, phone, wa_user_id, ig_user_id)) != 1:
        raise ContactNotFound(
            "Give exactly one of a contact id, a phone number, a WhatsApp user id and an "
            "Instagram-scoped id."
        )
    try:
        tenant_pk = UUID(str(tenant_id))
    except ValueError as exc:
        raise ContactNotFound("The tenant id is not a valid UUID.") from exc
    if not Tenant.all_objects.filter(pk=tenant_pk).exists():
        raise ContactNotFound(f"Tenant {tenant_pk} does not exist.")
    contacts = Contact.all_objects.filter(tenant_id=tenant_pk)
    if contact_id is not None:
        try:
            contact_pk = UUID(str(contact_id))
        except ValueError as exc:
            raise ContactNotFound("The contact id is not a valid UUID.") from exc
        contact = contacts.filter(pk=contact_pk).first()
        if contact is None:
            raise ContactNotFound(f"Tenant {tenant_pk} has no contact {contact_pk}.")
        return contact
    if ig_user_id is not None:
        lookup = ig_user_lookup(ig_user_id)
        if not lookup:
            raise ContactNotFound("That is not an Instagram-scoped id (digits).")
        by_identity = contacts.filter(ig_user_lookup=lookup)
        what = "Instagram-scoped id"
    elif wa_user_id is not None:
        lookup = wa_user_lookup(wa_user_id)
        if not lookup:
            raise ContactNotFound("That is not a WhatsApp user id (such as US.1234…).")
        by_identity = contacts.filter(wa_user_lookup=lookup)
        what = "WhatsApp user id"
    else:
        lookup = phone_lookup(phone or "")
        if not lookup:
            raise ContactNotFound("That is not a phone number (E.164, such as +5511988887777).")
        by_identity = contacts.filter(phone_lookup=lookup)
        what = "phone number"
    matches = list(by_identity.order_by("deleted_at", "-created_at"))
    live = [contact for contact in matches if contact.deleted_at is None]
    if live:
        return live[0]
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(str(contact.pk) for contact in matches)
        raise ContactNotFound(
            f"Several deleted contacts of tenant {tenant_pk} have that {what} ({ids}); "
            "choose one with --contact."
        )
    raise ContactNotFound(f"Tenant {tenant_pk} has no contact with that {what}.")


# --- Export -----------------------------------------------------------------------------------


def _export_attachment(attachment: MessageAttachment) -> dict[str, Any]:
    return {
        "id": _id(attachment.pk),
        "media_type": attachment.media_type,
        "content_type": attachment.content_type,
        "url": attachment.url,
        "provider_media_id": attachment.provider_media_id,
        "stored_file": attachment.file.name if attachment.file else None,
        "size_bytes": attachment.size_bytes,
        "download_status": attachment.download_status,
        "metadata": attachment.metadata,
        "created_at": _iso(attachment.created_at),
        "deleted_at": _iso(attachment.deleted_at),
    }


def _export_message(message: Message, attachments: list[MessageAttachment]) -> dict[str, Any]:
    return {
        "id": _id(message.pk),
        "direction": message.direction,
        "kind": message.kind,
        "sender": message.sender,
        "text": message.text,
        "status": message.status,
        "provider_message_id": message.provider_message_id,
        "error_code": message.error_code,
        "error_detail": message.error_detail,
        "metadata": message.metadata,
        "private_data": message.private_data,
        "created_at": _iso(message.created_at),
        "sent_at": _iso(message.sent_at),
        "delivered_at": _iso(message.delivered_at),
        "read_at": _iso(message.read_at),
        "processed_at": _iso(message.processed_at),
        "deleted_at": _iso(message.deleted_at),
        "attachments": [_export_attachment(item) for item in attachments],
    }


def _export_session(session: FlowSession) -> dict[str, Any]:
    return {
        "id": _id(session.pk),
        "flow": {
            "id": _id(session.flow_id),
            "flow_id": session.flow.flow_id,
            "version": session.flow.version,
            "name": session.flow.name,
        },
        "status": session.status,
        "current_node": session.current_node,
        "variables": session.variables,
        "retries": session.retries,
        "ai_turns": session.ai_turns,
        "handed_off": session.handed_off,
        "waiting_since": _iso(session.waiting_since),
        "wait_expires_at": _iso(session.wait_expires_at),
        "ended_at": _iso(session.ended_at),
        "created_at": _iso(session.created_at),
        "deleted_at": _iso(session.deleted_at),
    }


def contact_export(*, contact: Contact) -> dict[str, Any]:
    """Everything held about `contact`, decrypted, as a JSON-serialisable dict.

    Includes soft-deleted threads, messages, attachments and sessions. Times are ISO 8601
    strings, ids UUID strings. Reads only; never logs any of the values.
    """
    threads = list(
        ChatThread.all_objects.filter(contact=contact)
        .select_related("channel")
        .order_by("created_at", "pk")
    )
    thread_ids = [thread.pk for thread in threads]
    messages_by_thread: dict[UUID, list[Message]] = {pk: [] for pk in thread_ids}
    for message in Message.all_objects.filter(thread_id__in=thread_ids).order_by(
        "created_at", "pk"
    ):
        messages_by_thread[message.thread_id].append(message)
    attachments_by_message: dict[UUID, list[MessageAttachment]] = {}
    for attachment in MessageAttachment.all_objects.filter(
        message__thread_id__in=thread_ids
    ).order_by("created_at", "pk"):
        attachments_by_message.setdefault(attachment.message_id, []).append(attachment)
    notes_by_thread: dict[UUID, list[ThreadNote]] = {pk: [] for pk in thread_ids}
    for note in ThreadNote.all_objects.filter(thread_id__in=thread_ids).order_by(
        "created_at", "pk"
    ):
        notes_by_thread[note.thread_id].append(note)
    sessions_by_thread: dict[UUID, list[FlowSession]] = {pk: [] for pk in thread_ids}
    for session in (
        FlowSession.all_objects.filter(thread_id__in=thread_ids)
        .select_related("flow")
        .order_by("created_at", "pk")
    ):
        sessions_by_thread[session.thread_id].append(session)

    logger.info(
        "contact exported",
        extra={"contact_id": str(contact.pk), "threads": len(threads)},
    )
    return {
        "format_version": EXPORT_FORMAT_VERSION,
        "exported_at": _iso(timezone.now()),
        "tenant_id": _id(contact.tenant_id),
        "contact": {
            "id": _id(contact.pk),
            "external_id": contact.external_id,
            "phone": contact.phone,
            "wa_user_id": contact.wa_user_id,
            "ig_user_id": contact.ig_user_id,
            "name": contact.name,
            "opted_in_at": _iso(contact.opted_in_at),
            "opt_in_source": contact.opt_in_source,
            "opted_out_at": _iso(contact.opted_out_at),
            "opt_out_source": contact.opt_out_source,
            "erasure_requested_at": _iso(contact.erasure_requested_at),
            "erased_at": _iso(contact.erased_at),
            "created_at": _iso(contact.created_at),
            "updated_at": _iso(contact.updated_at),
            "deleted_at": _iso(contact.deleted_at),
        },
        "threads": [
            {
                "id": _id(thread.pk),
                "channel": {
                    "id": _id(thread.channel_id),
                    "provider": thread.channel.provider,
                    "identifier": thread.channel.identifier,
                },
                "status": thread.status,
                "needs_human": thread.needs_human,
                "handoff_reason": thread.handoff_reason,
                "metadata": thread.metadata,
                "last_activity_at": _iso(thread.last_activity_at),
                "last_inbound_at": _iso(thread.last_inbound_at),
                "created_at": _iso(thread.created_at),
                "deleted_at": _iso(thread.deleted_at),
                "messages": [
                    _export_message(message, attachments_by_message.get(message.pk, []))
                    for message in messages_by_thread[thread.pk]
                ],
                "flow_sessions": [
                    _export_session(session) for session in sessions_by_thread[thread.pk]
                ],
                "notes": [
                    {"id": _id(note.pk), "text": note.text, "created_at": _iso(note.created_at)}
                    for note in notes_by_thread[thread.pk]
                ],
            }
            for thread in threads
        ],
    }


# --- Erasure ----------------------------------------------------------------------------------


@dataclass
class ErasureReport:
    """What an erasure changed (or, for a dry run, would change). All zeros: nothing to do."""

    contact_id: str
    dry_run: bool = False
    contacts_redacted: int = 0
    messages_redacted: int = 0
    messages_cancelled: int = 0
    attachments_deleted: int = 0
    files_deleted: int = 0
    sessions_ended: int = 0
    threads_closed: int = 0
    notes_deleted: int = 0

    @property
    def changed(self) -> bool:
        return any(self.counts().values())

    def counts(self) -> dict[str, int]:
        return {
            key: value
            for key, value in asdict(self).items()
            if isinstance(value, int) and not isinstance(value, bool)
        }

    def as_dict(self) -> dict[str, Any]:
        return {"contact_id": self.contact_id, "dry_run": self.dry_run, **self.counts()}


def _contact_needs_redaction(contact: Contact) -> bool:
    return bool(
        contact.phone
        or contact.wa_user_id
        or contact.ig_user_id
        or contact.name
        or contact.external_id
        or contact.phone_lookup is not None
        or contact.wa_user_lookup is not None
        or contact.ig_user_lookup is not None
        or contact.erased_at is None
    )


def _messages_with_pii(thread_ids: list[UUID]) -> Any:
    # `text=""` compares the raw column: the encrypted field stores "" as "". Provider ids stay:
    # they hold nothing personal (a WhatsApp id is stored as a keyed hash), and they are what
    # recognises a late redelivery of an erased message as a duplicate.
    return Message.all_objects.filter(thread_id__in=thread_ids).filter(
        ~Q(text="") | ~Q(metadata={}) | ~Q(private_data={}) | ~Q(error_detail="")
    )


def _sessions_to_end(thread_ids: list[UUID]) -> Any:
    return FlowSession.all_objects.filter(thread_id__in=thread_ids).filter(
        Q(status=SessionStatus.WAITING) | ~Q(variables={})
    )


def _threads_to_close(contact: Contact) -> Any:
    return ChatThread.all_objects.filter(contact=contact).filter(
        Q(status=ThreadStatus.OPEN) | Q(needs_human=True) | ~Q(handoff_reason="") | ~Q(metadata={})
    )


def stored_files_delete(names: list[str], *, contact_id: str) -> None:
    """Delete erased media from storage (call after commit); failures are counted, not raised."""
    failed = 0
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # noqa: BLE001 - a storage error must not hide the others
            failed += 1
    if failed:
        logger.warning(
            "erasure: stored files could not be deleted",
            extra={"contact_id": contact_id, "failed": failed, "total": len(names)},
        )


class ContactBusyError(Exception):
    """Replies to the contact are being sent right now, for longer than an erasure waits:
    nothing was erased; try again in a minute."""

    def __init__(self) -> None:
        super().__init__(
            "Replies to this contact are being sent right now; nothing was erased. "
            "Try again in a minute."
        )


# How long an erasure waits for a batch of replies being sent to the contact (a batch
# normally takes well under a second; a provider that does not answer holds it longer).
SENDERS_WAIT_SECONDS = 20


def _senders_wait(*, contact_id: object) -> None:
    """Take the sender lock of each of the contact's threads until the transaction ends
    (before any row lock, as a sender takes it): a batch of replies being sent to the contact,
    its address and texts read before the erasure, finishes and is recorded first, and no
    batch starts until the erasure commits. Raises ContactBusyError after
    SENDERS_WAIT_SECONDS."""
    thread_ids = list(
        ChatThread.all_objects.filter(contact_id=contact_id).values_list("pk", flat=True)
    )
    try:
        locks.advisory_xact_locks(
            locks.THREAD_SENDER, thread_ids, timeout_seconds=SENDERS_WAIT_SECONDS
        )
    except locks.LockTimeout as exc:
        raise ContactBusyError() from exc


def contact_erase(*, contact: Contact, dry_run: bool = False) -> ErasureReport:
    """Erase the contact's personal data, keeping a tombstone; idempotent.

    In one transaction, holding row locks on the contact's threads (taken before the contact
    row, the same order as inbound processing, which locks a thread and may then update its
    contact) and on the contact:

    - the contact's phone, WhatsApp user id, name and external id are emptied and its blind
      indexes cleared (`phone_lookup=None`, `wa_user_lookup=None`), so a later message from
      the same number or user id creates a new contact;
      `erasure_requested_at` and `erased_at` are set once (the tombstone keeps consent times);
    - every message of its threads (soft-deleted ones too) gets an empty text, empty metadata
      and an empty provider error detail; unprocessed inbound messages are marked processed
      and queued outbound ones failed (`contact_erased`), so nothing is run or sent later;
    - attachment rows are deleted, and their stored files removed from storage once the
      transaction commits;
    - waiting flow sessions are interrupted and every session's variables cleared;
    - open threads are closed, with handoff state and metadata cleared.

    Before anything, it waits for a batch of replies being sent to the contact to finish
    (raising ContactBusyError, with nothing changed, after SENDERS_WAIT_SECONDS).

    The given instance is refreshed. No other contact is touched. A second run changes
    nothing and reports zeros. With `dry_run` nothing is changed and the report says what
    would be.
    """
    given = contact
    with transaction.atomic():
        if not dry_run:
            _senders_wait(contact_id=contact.pk)
        thread_ids = contact_threads_lock(contact_ids=[contact.pk], include_deleted=True)
        contact = Contact.all_objects.select_for_update().get(pk=contact.pk)
        report = ErasureReport(contact_id=str(contact.pk), dry_run=dry_run)

        report.contacts_redacted = int(_contact_needs_redaction(contact))
        report.messages_redacted = _messages_with_pii(thread_ids).count()
        queued = Message.all_objects.filter(
            thread_id__in=thread_ids, direction=Direction.OUTBOUND, status=MessageStatus.QUEUED
        )
        unprocessed = Message.all_objects.filter(
            thread_id__in=thread_ids, direction=Direction.INBOUND, processed_at__isnull=True
        )
        report.messages_cancelled = queued.count() + unprocessed.count()
        attachments = MessageAttachment.all_objects.filter(message__thread_id__in=thread_ids)
        report.attachments_deleted = attachments.count()
        file_names = [name for name in attachments.values_list("file", flat=True) if name]
        report.files_deleted = len(file_names)
        report.sessions_ended = _sessions_to_end(thread_ids).count()
        report.threads_closed = _threads_to_close(contact).count()
        notes = ThreadNote.all_objects.filter(thread_id__in=thread_ids)
        report.notes_deleted = notes.count()

        if dry_run or not report.changed:
            return report

        now = timezone.now()
        queued.update(
            status=MessageStatus.FAILED,
            error_code=ERASED_ERROR_CODE,
            updated_at=now,
        )
        unprocessed.update(processed_at=now, updated_at=now)
        _messages_with_pii(thread_ids).update(
            text="",
            metadata={},
            private_data={},
            error_detail="",
            updated_at=now,
        )
        attachments.delete()
        notes.delete()  # what staff wrote about the contact goes with the contact's data
        webhook_deliveries_erase_contact(contact_id=contact.pk)  # their texts, as sent
        _sessions_to_end(thread_ids).filter(status=SessionStatus.WAITING).update(
            status=SessionStatus.INTERRUPTED,
            ended_at=now,
            wait_expires_at=None,
            updated_at=now,
        )
        FlowSession.all_objects.filter(thread_id__in=thread_ids).exclude(variables={}).update(
            variables={}, updated_at=now
        )
        ChatThread.all_objects.filter(contact=contact, status=ThreadStatus.OPEN).update(
            status=ThreadStatus.CLOSED, updated_at=now
        )
        _threads_to_close(contact).update(
            needs_human=False, handoff_reason="", metadata={}, updated_at=now
        )
        handoff_end(thread_ids=thread_ids, now=now)
        contact.phone = ""
        contact.wa_user_id = ""
        contact.ig_user_id = ""
        contact.name = ""
        contact.external_id = ""
        contact.phone_lookup = None
        contact.wa_user_lookup = None
        contact.ig_user_lookup = None
        contact.erasure_requested_at = contact.erasure_requested_at or now
        contact.erased_at = contact.erased_at or now
        contact.save(
            update_fields=[
                "phone",
                "wa_user_id",
                "ig_user_id",
                "name",
                "name_index",
                "external_id",
                "phone_lookup",
                "wa_user_lookup",
                "ig_user_lookup",
                "erasure_requested_at",
                "erased_at",
                "updated_at",
            ]
        )
        if file_names:
            contact_id = report.contact_id
            transaction.on_commit(lambda: stored_files_delete(file_names, contact_id=contact_id))

    given.refresh_from_db()
    logger.info("contact erased", extra={"contact_id": report.contact_id, **report.counts()})
    return report
