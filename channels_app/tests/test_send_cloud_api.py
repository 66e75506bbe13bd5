"""Sending through the Graph API: text, media, reply buttons, lists; errors and throttling."""

import json

import pytest
import responses

from channels_app.providers import OutboundPayload
from channels_app.providers.cloud_api import build_message
from conversations.services.outbound import TransientDeliveryError, message_deliver, replies_store
from core.crypto import provider_id_pseudonym
from flows.services import Reply
from tests import factories

from .webhook_support import load, run_on_commit

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(tenant):
    channel = factories.CloudChannelFactory(tenant=tenant)
    contact = factories.ContactFactory(tenant=tenant, phone="+16505551234", name="Sheena")
    return factories.ThreadFactory(channel=channel, contact=contact)


def url_of(thread):
    return (
        f"https://graph.facebook.test/v22.0/{thread.channel.settings['phone_number_id']}/messages"
    )


def sent_bodies():
    return [json.loads(call.request.body) for call in responses.calls]


@responses.activate
def test_question_with_three_choices_goes_out_as_reply_buttons(thread):
    # given
    responses.post(url_of(thread), json=load("cloud_api/messages_sent_200.json"))
    reply = Reply(
        text="How can we help you today?",
        choices=(
            ("trial", "Book a free trial"),
            ("prices", "Membership prices"),
            ("other", "Something else entirely"),
        ),
    )

    # when
    with run_on_commit():
        (message,) = replies_store(thread=thread, replies=[reply])

    # then
    assert sent_bodies() == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16505551234",
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "How can we help you today?"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "trial", "title": "Book a free trial"}},
                        {"type": "reply", "reply": {"id": "prices", "title": "Membership prices"}},
                        {
                            "type": "reply",
                            "reply": {"id": "other", "title": "Something else entir"},
                        },
                    ]
                },
            },
        }
    ]
    assert responses.calls[0].request.headers["Authorization"] == "Bearer EAAG-test-token"
    message.refresh_from_db()
    assert message.status == "sent"
    assert message.provider_message_id == provider_id_pseudonym(
        "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
    )


def test_four_to_ten_choices_go_out_as_a_list_and_more_as_numbered_text():
    choices = tuple((f"c{n}", f"Choice number {n} with a long label") for n in range(1, 5))
    (body,) = build_message(OutboundPayload(to_phone="+1555", text="Pick", choices=choices))
    assert body["interactive"]["type"] == "list"
    rows = body["interactive"]["action"]["sections"][0]["rows"]
    assert [row["id"] for row in rows] == ["c1", "c2", "c3", "c4"]
    assert all(len(row["title"]) <= 24 for row in rows)
    assert len(body["interactive"]["action"]["button"]) <= 20

    many = tuple((f"c{n}", f"C{n}") for n in range(1, 12))
    (body,) = build_message(OutboundPayload(to_phone="+1555", text="Pick", choices=many))
    assert body["type"] == "text"
    assert body["text"]["body"].startswith("Pick\n\n1. C1\n2. C2")


def test_plain_text_and_media():
    (text,) = build_message(OutboundPayload(to_phone="+1555", text="Hello"))
    assert text["text"] == {"preview_url": False, "body": "Hello"}
    (image,) = build_message(
        OutboundPayload(to_phone="+1555", text="Our gym", media_url="https://cdn.example/a.jpg")
    )
    assert image["type"] == "image"
    assert image["image"] == {"link": "https://cdn.example/a.jpg", "caption": "Our gym"}
    (doc,) = build_message(OutboundPayload(to_phone="+1555", text="", media_url="https://x/a.pdf"))
    assert doc["document"] == {"link": "https://x/a.pdf"}


@responses.activate
def test_permanent_graph_error_fails_with_code(thread):
    responses.post(url_of(thread), json=load("cloud_api/error_131030.json"), status=400)
    with run_on_commit():
        (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "131030")
    assert message.error_detail.startswith("Recipient phone number not in allowed list")


@responses.activate
def test_throttling_is_transient_even_with_http_400(thread):
    responses.post(url_of(thread), json=load("cloud_api/error_130429.json"), status=400)
    responses.post(url_of(thread), json=load("cloud_api/messages_sent_200.json"))
    (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    with pytest.raises(TransientDeliveryError):
        message_deliver(message_id=message.pk)
    assert message_deliver(message_id=message.pk) == "sent"
    assert message_deliver(message_id=message.pk) == "skipped"
    assert len(responses.calls) == 2


@responses.activate
def test_graph_api_base_override_on_the_channel(thread):
    number_id = thread.channel.settings["phone_number_id"]
    thread.channel.settings = {"phone_number_id": number_id, "api_base_url": "http://127.0.0.1:9"}
    thread.channel.save()
    responses.post(
        f"http://127.0.0.1:9/{number_id}/messages", json=load("cloud_api/messages_sent_200.json")
    )
    (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    assert message_deliver(message_id=message.pk) == "sent"


@responses.activate
def test_channel_without_token_fails_without_a_request(thread):
    thread.channel.secrets = {}
    thread.channel.save()
    (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    assert message_deliver(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert message.error_code == "no_credentials"
    assert len(responses.calls) == 0
