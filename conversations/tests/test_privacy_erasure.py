"""Erasure end to end: the service, its guarantees, and a raw read of every table."""

import json
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from conversations.models import ChatThread, Contact, Message, MessageAttachment, MessageStatus
from conversations.services.contacts import contact_get_or_create
from conversations.services.privacy import ERASED_ERROR_CODE, contact_erase
from core.crypto import DecryptionError, decrypt_str, phone_lookup
from flows.models import Flow, FlowSession, SessionStatus
from tests import factories

PHONE = "+5511977776666"
NAME = "Beatriz Quintanilha"
TEXTS = ["my secret question about knees", "reply mentioning Beatriz Quintanilha"]
EMAIL = "beatriz.q@example.org"


def _flow(channel) -> Flow:
    return Flow.objects.create(
        tenant=channel.tenant,
        channel=channel,
        flow_id="welcome",
        version=1,
        name="Welcome",
        definition={"flow_id": "welcome", "nodes": []},
        is_active=True,
    )


def _populate(channel, *, phone=PHONE, name=NAME, texts=TEXTS, email=EMAIL):
    """A contact with a thread, inbound and outbound messages, an attachment and sessions."""
    contact = factories.ContactFactory(
        tenant=channel.tenant, phone=phone, name=name, opted_in_at=timezone.now()
    )
    thread = factories.ThreadFactory(
        channel=channel,
        contact=contact,
        needs_human=True,
        handoff_reason="asked for a human",
        metadata={"note": name},
    )
    inbound = factories.MessageFactory(
        thread=thread,
        text=texts[0],
        provider_message_id=f"SM{phone[-6:]}in",
        metadata={"profile_name": name, "interactive_id": "trial"},
        processed_at=timezone.now(),
    )
    outbound = factories.MessageFactory(
        thread=thread,
        direction="outbound",
        sender="flow",
        status=MessageStatus.FAILED,
        text=texts[1],
        error_detail=f"The 'To' number {phone} is not a valid phone number.",
    )
    stored = default_storage.save(f"attachments/test/{phone[-4:]}.jpg", ContentFile(b"jpeg"))
    attachment = MessageAttachment.objects.create(
        message=inbound,
        media_type="image",
        content_type="image/jpeg",
        url=f"https://api.twilio.test/media/{phone[-4:]}",
        file=stored,
        size_bytes=4,
    )
    flow = Flow.objects.filter(channel=channel).first() or _flow(channel)
    waiting = FlowSession.objects.create(
        tenant=channel.tenant,
        thread=thread,
        flow=flow,
        status=SessionStatus.WAITING,
        current_node="ask_email",
        variables={"email": email, "interest": "trial"},
        waiting_since=timezone.now(),
        wait_expires_at=timezone.now() + timedelta(hours=1),
    )
    done = FlowSession.objects.create(
        tenant=channel.tenant,
        thread=thread,
        flow=flow,
        status=SessionStatus.COMPLETED,
        variables={"name_given": name},
        ended_at=timezone.now(),
    )
    return {
        "contact": contact,
        "thread": thread,
        "inbound": inbound,
        "outbound": outbound,
        "attachment": attachment,
        "stored": stored,
        "waiting": waiting,
        "done": done,
    }


def _raw_traces(needles: list[str]) -> list[str]:
    """Every (table, column) whose raw value or decrypted value contains one of `needles`."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            columns = [col[0] for col in cursor.description]
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, dict | list):
                        value = json.dumps(value, ensure_ascii=False)
                    if not isinstance(value, str) or not value:
                        continue
                    candidates = [value]
                    if value.startswith("gAAAAA"):
                        try:
                            candidates.append(decrypt_str(value))
                        except DecryptionError:
                            pass
                    for candidate in candidates:
                        for needle in needles:
                            if needle in candidate:
                                found.append(f"{table}.{column}")
    return found


@pytest.mark.django_db(transaction=True)
def test_erasure_leaves_no_trace_in_any_table(twilio_channel):
    # given a contact with everything, and another contact of the same tenant
    data = _populate(twilio_channel)
    other = _populate(
        twilio_channel,
        phone="+5511955554444",
        name="Other Person",
        texts=["other text one", "other text two"],
        email="other@example.org",
    )
    lookup = phone_lookup(PHONE)
    needles = [PHONE, PHONE.lstrip("+"), NAME, EMAIL, lookup, *TEXTS]
    assert _raw_traces(needles), "the scan must find the data before erasure"

    # when
    report = contact_erase(contact=data["contact"])

    # then nothing of the contact is left anywhere in the database
    assert _raw_traces(needles) == []
    assert report.as_dict() == {
        "contact_id": str(data["contact"].pk),
        "dry_run": False,
        "contacts_redacted": 1,
        "messages_redacted": 2,
        "messages_cancelled": 0,
        "attachments_deleted": 1,
        "files_deleted": 1,
        "sessions_ended": 2,
        "threads_closed": 1,
        "notes_deleted": 0,
    }
    assert not default_storage.exists(data["stored"])
    # and the other contact is untouched
    other_needles = ["+5511955554444", "Other Person", "other@example.org", "other text one"]
    assert len(set(_raw_traces(other_needles))) >= 4
    assert default_storage.exists(other["stored"])
    other_contact = Contact.objects.get(pk=other["contact"].pk)
    assert (other_contact.phone, other_contact.name) == ("+5511955554444", "Other Person")
    assert other_contact.erased_at is None


@pytest.mark.django_db
def test_erasure_keeps_a_tombstone_and_ends_everything(twilio_channel):
    # given
    data = _populate(twilio_channel)
    opted_in_at = data["contact"].opted_in_at

    # when
    contact_erase(contact=data["contact"])

    # then
    contact = Contact.objects.get(pk=data["contact"].pk)
    assert (contact.phone, contact.name, contact.external_id) == ("", "", "")
    assert contact.phone_lookup is None
    assert contact.erased_at is not None and contact.erasure_requested_at is not None
    assert contact.opted_in_at == opted_in_at
    thread = ChatThread.objects.get(pk=data["thread"].pk)
    assert (thread.status, thread.needs_human, thread.handoff_reason, thread.metadata) == (
        "closed",
        False,
        "",
        {},
    )
    for message in Message.all_objects.filter(thread=thread):
        assert (message.text, message.metadata, message.error_detail) == ("", {}, "")
    # provider ids stay (a WhatsApp id is stored as a keyed hash), so a late redelivery of an
    # erased message is still a duplicate and never brings the contact back
    assert Message.objects.get(pk=data["inbound"].pk).provider_message_id
    assert not MessageAttachment.all_objects.filter(message__thread=thread).exists()
    waiting = FlowSession.objects.get(pk=data["waiting"].pk)
    assert (waiting.status, waiting.variables, waiting.wait_expires_at) == (
        SessionStatus.INTERRUPTED,
        {},
        None,
    )
    assert waiting.ended_at is not None
    done = FlowSession.objects.get(pk=data["done"].pk)
    assert (done.status, done.variables) == (SessionStatus.COMPLETED, {})


@pytest.mark.django_db
def test_second_erasure_changes_nothing_and_reports_zeros(twilio_channel):
    data = _populate(twilio_channel)
    contact_erase(contact=data["contact"])
    erased = Contact.objects.get(pk=data["contact"].pk)
    before = (erased.erased_at, erased.updated_at)

    report = contact_erase(contact=erased)

    assert not report.changed
    assert all(count == 0 for count in report.counts().values())
    after = Contact.objects.get(pk=erased.pk)
    assert (after.erased_at, after.updated_at) == before


@pytest.mark.django_db
def test_dry_run_reports_counts_and_changes_nothing(twilio_channel):
    data = _populate(twilio_channel)

    report = contact_erase(contact=data["contact"], dry_run=True)

    assert report.dry_run
    assert report.messages_redacted == 2 and report.attachments_deleted == 1
    contact = Contact.objects.get(pk=data["contact"].pk)
    assert (contact.phone, contact.name, contact.erased_at) == (PHONE, NAME, None)
    assert Message.objects.get(pk=data["inbound"].pk).text == TEXTS[0]
    assert MessageAttachment.objects.filter(pk=data["attachment"].pk).exists()
    assert default_storage.exists(data["stored"])
    assert FlowSession.objects.get(pk=data["waiting"].pk).status == SessionStatus.WAITING


@pytest.mark.django_db
def test_erasure_covers_soft_deleted_rows(twilio_channel):
    data = _populate(twilio_channel)
    Message.objects.filter(pk=data["outbound"].pk).soft_delete()
    ChatThread.objects.filter(pk=data["thread"].pk).soft_delete()

    report = contact_erase(contact=data["contact"])

    assert report.messages_redacted == 2
    assert Message.all_objects.get(pk=data["outbound"].pk).text == ""


@pytest.mark.django_db
def test_pending_work_of_an_erased_contact_is_cancelled(twilio_channel):
    # given an inbound message not yet processed and a reply still queued
    data = _populate(twilio_channel)
    pending_in = factories.MessageFactory(thread=data["thread"], text="unprocessed text")
    queued = factories.MessageFactory(
        thread=data["thread"],
        direction="outbound",
        sender="flow",
        status=MessageStatus.QUEUED,
        text="queued reply",
    )

    # when
    report = contact_erase(contact=data["contact"])

    # then neither will be processed or sent later
    assert report.messages_cancelled == 2
    assert Message.objects.get(pk=pending_in.pk).processed_at is not None
    queued.refresh_from_db()
    assert (queued.status, queued.error_code, queued.text) == ("failed", ERASED_ERROR_CODE, "")


@pytest.mark.django_db
def test_same_number_writing_again_becomes_a_new_contact(twilio_channel):
    data = _populate(twilio_channel)
    contact_erase(contact=data["contact"])

    contact, created = contact_get_or_create(
        tenant=twilio_channel.tenant, phone=PHONE, name="New Name"
    )

    assert created and contact.pk != data["contact"].pk
    assert contact.phone == PHONE

    # erasing the old tombstone again leaves the new contact alone
    assert not contact_erase(contact=data["contact"]).changed
    contact.refresh_from_db()
    assert (contact.phone, contact.name, contact.phone_lookup) == (
        PHONE,
        "New Name",
        phone_lookup(PHONE),
    )


@pytest.mark.django_db
def test_a_redelivery_after_the_erasure_does_not_bring_the_contact_back(twilio_channel):
    from channels_app.providers import ParsedInbound
    from conversations.services.inbound import message_receive

    # given: a WhatsApp message, then its contact erased
    wamid = "wamid.HBgNNTUxMTk3Nzc3NjY2NhUCABIYFDNBMEQ2OTk5RjdCNzQ3QjZFQzQ1AA=="
    inbound = ParsedInbound(
        provider_message_id=wamid, from_phone="+5511977776666", text="hi", profile_name="Ana"
    )
    message, _ = message_receive(channel=twilio_channel, inbound=inbound)
    contact_erase(contact=message.thread.contact)

    # when: the provider delivers the same message again
    again, created = message_receive(channel=twilio_channel, inbound=inbound)

    # then: a duplicate; no live contact with the phone again
    assert (again.pk, created) == (message.pk, False)
    assert not Contact.objects.filter(erased_at__isnull=True).exists()


@pytest.mark.django_db
def test_staff_notes_are_exported_and_erased_with_the_contact(tenant):
    from conversations.models import ThreadNote
    from conversations.services.privacy import contact_export
    from conversations.services.threads import thread_note_add

    thread = factories.ThreadFactory(channel=factories.TwilioChannelFactory(tenant=tenant))
    thread_note_add(thread=thread, text="Prefers mornings, allergic to peanuts")
    exported = contact_export(contact=thread.contact)
    assert exported["threads"][0]["notes"][0]["text"] == "Prefers mornings, allergic to peanuts"
    report = contact_erase(contact=thread.contact)
    assert report.notes_deleted == 1
    assert not ThreadNote.all_objects.filter(thread=thread).exists()
