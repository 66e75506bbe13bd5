"""A message stored from a snapshot taken just before its contact's erasure committed keeps
nothing once processed, and runs no flow."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from conversations.models import Message, MessageAttachment
from conversations.services.privacy import contact_erase
from conversations.services.process import thread_process_inbound
from flows.services import FlowRun
from tests import factories


@pytest.mark.django_db
def test_a_message_racing_the_erasure_is_discarded_when_processed(monkeypatch):
    # given an erased contact, and a message that landed on its old thread afterwards
    thread = factories.ThreadFactory()
    contact_erase(contact=thread.contact)
    late = factories.MessageFactory(thread=thread, text="late secret text", metadata={"x": 1})
    MessageAttachment.objects.create(message=late, media_type="image", url="https://m.test/1")
    calls = []
    monkeypatch.setattr(
        "conversations.services.process.flow_handle_inbound",
        lambda **kwargs: calls.append(kwargs) or FlowRun(),
    )

    # when
    handled = thread_process_inbound(thread_id=thread.pk)

    # then
    late = Message.objects.get(pk=late.pk)
    assert handled == 1
    assert (late.text, late.metadata) == ("", {})
    assert late.processed_at is not None
    assert not MessageAttachment.objects.filter(message=late).exists()
    assert calls == []


@pytest.mark.django_db(transaction=True)
def test_media_of_a_message_racing_the_erasure_leaves_storage_and_erasing_again_is_a_noop(
    twilio_channel,
):
    # given: an erased contact, and a message stored from a snapshot taken before, with its
    # media already downloaded
    thread = factories.ThreadFactory(channel=twilio_channel)
    contact_erase(contact=thread.contact)
    late = factories.MessageFactory(thread=thread, text="photo of my ID card", processed_at=None)
    name = default_storage.save("attachments/x/idcard.jpg", ContentFile(b"jpeg"))
    MessageAttachment.objects.create(
        message=late, media_type="image", file=name, download_status="stored"
    )

    # when: processing discards it
    thread_process_inbound(thread_id=thread.pk)

    # then: the file is gone with its row, and a second erasure finds nothing to do
    assert not default_storage.exists(name)
    assert not contact_erase(contact=thread.contact).changed
