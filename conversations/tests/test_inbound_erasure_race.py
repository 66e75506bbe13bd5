"""A message stored from a snapshot taken just before its contact's erasure committed keeps
nothing once processed, and runs no flow."""

import pytest

from conversations.models import Message, MessageAttachment
from conversations.services.inbound import thread_process_inbound
from conversations.services.privacy import contact_erase
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
        "flows.services.flow_handle_inbound", lambda **kwargs: calls.append(kwargs) or []
    )

    # when
    handled = thread_process_inbound(thread_id=thread.pk)

    # then
    late = Message.objects.get(pk=late.pk)
    assert handled == 1
    assert (late.text, late.metadata) == ("", {"erased": True})
    assert late.processed_at is not None
    assert not MessageAttachment.objects.filter(message=late).exists()
    assert calls == []
