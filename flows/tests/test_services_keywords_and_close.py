"""Opt-in keywords from contacts who never opted out, and closing a handed-off thread."""

import pytest

from conversations.models import Message
from conversations.services.process import thread_process_inbound
from conversations.services.threads import thread_update
from flows.services import flow_create
from flows.tests.support import flow_doc, receive, texts
from tests import factories

pytestmark = pytest.mark.django_db


def test_an_opt_in_keyword_from_a_subscribed_contact_reaches_the_flow(tenant, twilio_channel):
    # given: a pt-BR menu with a "Voltar" choice ("voltar" is a default opt-in keyword)
    thread = factories.ThreadFactory(channel=twilio_channel)
    doc = flow_doc(
        "menu",
        trigger={"default": True},
        language="pt-BR",
        start="ask",
        nodes=[
            {
                "id": "ask",
                "type": "question",
                "text": "Escolha",
                "choices": [
                    {"id": "precos", "label": "Preços", "next": "fim"},
                    {"id": "voltar", "label": "Voltar", "next": "fim2"},
                ],
            },
            {"id": "fim", "type": "end", "text": "ok precos"},
            {"id": "fim2", "type": "end", "text": "ok voltando"},
        ],
    )
    flow_create(tenant=tenant, channel=twilio_channel, definition=doc)
    receive(thread, "oi")

    # when: a contact who never opted out answers "Voltar"
    replies = receive(thread, "Voltar")

    # then: it is the answer to the question, not a consent change
    assert texts(replies) == ["ok voltando"]
    thread.contact.refresh_from_db()
    assert thread.contact.opted_in_at is None


def test_closing_a_handed_off_thread_resumes_automation(tenant, twilio_channel):
    # given: a conversation handed off to a person
    thread = factories.ThreadFactory(channel=twilio_channel)
    doc = flow_doc(
        "h",
        trigger={"default": True},
        start="m",
        nodes=[
            {"id": "m", "type": "message", "text": "Hi!", "next": "h"},
            {"id": "h", "type": "handoff", "text": "A person will help.", "reason": "x"},
        ],
    )
    flow_create(tenant=tenant, channel=twilio_channel, definition=doc)
    assert texts(receive(thread, "hello")) == ["Hi!", "A person will help."]

    # when: the agent closes the thread, and the contact writes again later
    thread_update(thread=thread, status="closed")
    factories.MessageFactory(thread=thread, text="hello again")
    thread_process_inbound(thread_id=thread.pk)

    # then: the flow ran again from the start (and handed off again)
    thread.refresh_from_db()
    assert thread.status == "open"
    outbound = Message.objects.filter(thread=thread, direction="outbound")
    assert list(outbound.order_by("created_at", "id").values_list("text", flat=True)) == [
        "Hi!",
        "A person will help.",
        "Hi!",
        "A person will help.",
    ]
