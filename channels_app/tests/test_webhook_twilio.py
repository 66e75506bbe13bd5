"""Twilio webhooks replayed from stored payloads, signed with twilio's RequestValidator."""

import pytest
from django.conf import settings
from django.db import connection

from conversations.models import ChatThread, Contact, Message, MessageAttachment, ThreadStatus
from conversations.services.contacts import contact_external_id

from .webhook_support import TWILIO_NUMBER, post_twilio, twilio_params

pytestmark = pytest.mark.django_db

TOKEN = "chan-token"  # the factory channel's auth token


def test_incoming_text_is_stored_once_with_contact_and_thread(client, wa_twilio_channel, no_flow):
    # given
    params = twilio_params("inbound_text")

    # when
    response = post_twilio(client, params, token=TOKEN)

    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode() == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    message = Message.objects.get()
    assert message.provider_message_id == params["MessageSid"]
    assert (message.direction, message.kind, message.text) == ("inbound", "text", "Hello")
    assert message.processed_at is not None  # in-process task ran after commit
    assert no_flow == [message.pk]
    contact = Contact.objects.get()
    assert (contact.phone, contact.name) == ("+5521987654321", "Maria Silva")
    assert contact.external_id == contact_external_id("5521987654321")
    thread = ChatThread.objects.get()
    assert thread.last_inbound_at == message.created_at
    assert thread.channel == wa_twilio_channel


@pytest.mark.parametrize("path", ["/api/webhooks/twilio/whatsapp", "/webhooks/twilio/whatsapp"])
def test_legacy_paths_are_aliases(client, wa_twilio_channel, no_flow, path):
    response = post_twilio(client, twilio_params("inbound_text"), token=TOKEN, path=path)
    assert response.status_code == 200
    assert Message.objects.count() == 1


def test_duplicate_delivery_is_stored_and_processed_once(client, wa_twilio_channel, no_flow):
    params = twilio_params("inbound_text")
    for _ in range(3):
        assert post_twilio(client, params, token=TOKEN).status_code == 200
    assert Message.objects.count() == 1
    assert len(no_flow) == 1


@pytest.mark.parametrize(
    "signature",
    ["", "bm90LXRoZS1zaWduYXR1cmU=", None],
    ids=["missing", "garbage", "wrong-token"],
)
def test_bad_signature_is_403_and_stores_nothing(client, wa_twilio_channel, no_flow, signature):
    params = twilio_params("inbound_text")
    if signature is None:
        response = post_twilio(client, params, token="some-other-token")
    else:
        response = post_twilio(client, params, token=TOKEN, signature=signature)
    assert response.status_code == 403
    assert not Message.objects.exists()
    assert not Contact.objects.exists()


def test_signature_covers_every_parameter(client, wa_twilio_channel, no_flow):
    # given: a request signed, then tampered with
    params = twilio_params("inbound_text")
    from .webhook_support import twilio_signature

    signature = twilio_signature(TOKEN, "/api/webhooks/whatsapp", params)
    params["Body"] = "tampered"

    # when
    response = post_twilio(client, params, token=TOKEN, signature=signature)

    # then
    assert response.status_code == 403
    assert not Message.objects.exists()


def test_signature_is_checked_over_public_base_url_and_query(client, wa_twilio_channel, no_flow):
    params = twilio_params("inbound_text")
    path = "/api/webhooks/whatsapp?source=console"
    assert post_twilio(client, params, token=TOKEN, path=path).status_code == 200
    # the same request signed for another origin fails
    from twilio.request_validator import RequestValidator

    other = RequestValidator(TOKEN).compute_signature(
        "http://internal:8000/api/webhooks/whatsapp", params | {"MessageSid": "SMother"}
    )
    response = post_twilio(client, params | {"MessageSid": "SMother"}, token=TOKEN, signature=other)
    assert response.status_code == 403
    assert settings.PUBLIC_BASE_URL.startswith("https://")


def test_channel_without_token_uses_the_default_token(client, tenant, no_flow):
    from tests import factories

    factories.TwilioChannelFactory(tenant=tenant, phone_number=TWILIO_NUMBER, secrets={})
    params = twilio_params("inbound_text")
    assert post_twilio(client, params, token=TOKEN).status_code == 403
    assert post_twilio(client, params, token=settings.TWILIO_AUTH_TOKEN).status_code == 200
    assert Message.objects.count() == 1


def test_unknown_channel_is_acknowledged_and_stores_nothing(client, db, no_flow):
    params = twilio_params("inbound_text")
    assert post_twilio(client, params, token="chan-token").status_code == 403
    response = post_twilio(client, params, token=settings.TWILIO_AUTH_TOKEN)
    assert response.status_code == 200
    assert not Message.objects.exists()
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        {"MessageSid": "", "SmsSid": "", "SmsMessageSid": ""},
        {"From": ""},
        {"NumMedia": "many"},
        {"Latitude": "north", "Longitude": "1"},
    ],
    ids=["no-sid", "no-sender", "bad-num-media", "bad-latitude"],
)
def test_malformed_form_is_400_and_stores_nothing(client, wa_twilio_channel, no_flow, overrides):
    params = twilio_params("inbound_text", **overrides)
    response = post_twilio(client, params, token=TOKEN)
    assert response.status_code == 400
    assert not Message.objects.exists()
    assert not Contact.objects.exists()


def test_media_message_records_attachment(client, wa_twilio_channel, no_flow, monkeypatch):
    downloads = []
    monkeypatch.setattr(
        "conversations.tasks.attachment_download",
        lambda *, attachment_id, final_attempt: downloads.append(attachment_id) or "stored",
    )
    params = twilio_params("inbound_image")
    assert post_twilio(client, params, token=TOKEN).status_code == 200
    message = Message.objects.get()
    assert (message.kind, message.text) == ("image", "My gym card")
    attachment = MessageAttachment.objects.get()
    assert (attachment.media_type, attachment.content_type, attachment.url) == (
        "image",
        "image/jpeg",
        params["MediaUrl0"],
    )
    assert downloads == [str(attachment.pk)]


def test_location_and_button_messages(client, wa_twilio_channel, no_flow):
    assert post_twilio(client, twilio_params("inbound_location"), token=TOKEN).status_code == 200
    assert post_twilio(client, twilio_params("inbound_button"), token=TOKEN).status_code == 200
    location, button = Message.objects.order_by("created_at")
    assert location.kind == "location"
    assert location.private_data["location"] == {
        "latitude": -23.5613,
        "longitude": -46.6565,
        "name": "Paulista gym",
        "address": "Av. Paulista, 1000",
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT metadata, private_data FROM conversations_message")
        raw = " ".join(str(column) for row in cursor.fetchall() for column in row)
    assert "-23.5613" not in raw and "Paulista" not in raw  # where a contact is: encrypted
    assert button.kind == "button"
    assert button.metadata["interactive_id"] == "trial"
    assert button.text == "Book a free trial"


def test_closed_thread_reopens_on_a_new_message(client, wa_twilio_channel, no_flow):
    post_twilio(client, twilio_params("inbound_text"), token=TOKEN)
    ChatThread.objects.update(status=ThreadStatus.CLOSED)
    post_twilio(client, twilio_params("inbound_text", MessageSid="SMsecond"), token=TOKEN)
    thread = ChatThread.objects.get()
    assert thread.status == ThreadStatus.OPEN
    assert thread.messages.count() == 2


def test_get_is_not_a_twilio_verification(client, wa_twilio_channel):
    assert client.get("/api/webhooks/twilio/whatsapp").status_code == 405
