"""Sending through the real twilio REST client, with only its HTTP layer intercepted."""

import base64
import json
from urllib.parse import parse_qs

import pytest
import requests
import responses
import urllib3
from django.conf import settings

from conversations.models import Message
from conversations.services.outbound import (
    MAX_SEND_ATTEMPTS,
    TransientDeliveryError,
    message_deliver,
    replies_store,
)
from flows.services import Reply
from tests import factories

from .webhook_support import load, run_on_commit

pytestmark = pytest.mark.django_db

SID = "AC11111111111111111111111111111111"
MESSAGES_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"


@pytest.fixture
def thread(tenant):
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    contact = factories.ContactFactory(tenant=tenant, phone="+5521987654321", name="Maria")
    return factories.ThreadFactory(channel=channel, contact=contact)


def created(sid="SM0123456789abcdef0123456789abcdef"):
    body = load("twilio/messages_create_201.json")
    body["sid"] = sid
    return body


def form(call):
    return {k: v if len(v) > 1 else v[0] for k, v in parse_qs(call.request.body).items()}


@responses.activate
def test_reply_is_sent_with_numbered_choices_and_status_callback(thread):
    # given
    responses.post(MESSAGES_URL, json=created(), status=201)
    reply = Reply(text="How can we help?", choices=(("trial", "Free trial"), ("prices", "Prices")))

    # when
    with run_on_commit():
        (message,) = replies_store(thread=thread, replies=[reply])

    # then
    assert len(responses.calls) == 1
    sent = form(responses.calls[0])
    assert sent == {
        "From": "whatsapp:+15550000001",
        "To": "whatsapp:+5521987654321",
        "Body": "How can we help?\n\n1. Free trial\n2. Prices",
        "StatusCallback": f"{settings.PUBLIC_BASE_URL}/api/webhooks/whatsapp",
    }
    auth = responses.calls[0].request.headers["Authorization"]
    assert auth == "Basic " + base64.b64encode(f"{SID}:chan-token".encode()).decode()
    message.refresh_from_db()
    assert message.status == "sent"
    assert message.provider_message_id == "SM0123456789abcdef0123456789abcdef"
    assert message.sent_at is not None
    assert message.metadata == {
        "choices": [{"id": "trial", "label": "Free trial"}, {"id": "prices", "label": "Prices"}]
    }


@responses.activate
def test_media_and_messaging_service(thread):
    thread.channel.settings = {"messaging_service_sid": "MG0123"}
    thread.channel.save()
    responses.post(MESSAGES_URL, json=created(), status=201)
    with run_on_commit():
        replies_store(
            thread=thread, replies=[Reply(text="Our gym", media_url="https://cdn.example/gym.jpg")]
        )
    sent = form(responses.calls[0])
    assert sent["MessagingServiceSid"] == "MG0123"
    assert "From" not in sent
    assert sent["MediaUrl"] == "https://cdn.example/gym.jpg"


@responses.activate
def test_channel_api_base_url_override(thread):
    thread.channel.settings = {"api_base_url": "http://127.0.0.1:9911"}
    thread.channel.save()
    responses.post(
        f"http://127.0.0.1:9911/2010-04-01/Accounts/{SID}/Messages.json", json=created(), status=201
    )
    with run_on_commit():
        (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    message.refresh_from_db()
    assert message.status == "sent"


@responses.activate
def test_default_credentials_when_the_channel_has_none(thread):
    thread.channel.secrets = {}
    thread.channel.save()
    url = f"https://api.twilio.test/2010-04-01/Accounts/{settings.TWILIO_ACCOUNT_SID}/Messages.json"
    responses.post(url, json=created(), status=201)
    with run_on_commit():
        (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    message.refresh_from_db()
    assert message.status == "sent"


@responses.activate
def test_permanent_error_fails_with_code_and_scrubbed_reason(thread):
    responses.post(MESSAGES_URL, json=load("twilio/messages_create_400.json"), status=400)
    with run_on_commit():
        (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    message.refresh_from_db()
    assert message.status == "failed"
    assert message.error_code == "21211"
    assert "is not a valid phone number" in message.error_detail
    assert "5521987654321" not in message.error_detail
    assert message.provider_message_id is None
    # never tried again
    assert message_deliver(message_id=message.pk) == "skipped"
    assert len(responses.calls) == 1


@responses.activate
def test_transient_errors_retry_then_fail_after_the_last_attempt(thread):
    # given: Twilio answers 503, then 429, then refuses the connection
    responses.post(MESSAGES_URL, json={"code": 20500, "message": "down", "status": 503}, status=503)
    responses.post(MESSAGES_URL, json={"code": 20429, "message": "slow", "status": 429}, status=429)
    refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")
    responses.post(
        MESSAGES_URL,
        body=requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", refused)),
    )
    (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])

    # when / then: each attempt leaves it queued with the error, until the last one
    codes = []
    for _attempt in range(MAX_SEND_ATTEMPTS - 1):
        with pytest.raises(TransientDeliveryError):
            message_deliver(message_id=message.pk)
        message.refresh_from_db()
        assert message.status == "queued"
        codes.append(message.error_code)
    assert codes[:3] == ["20500", "20429", "network"]
    assert message_deliver(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert (message.status, message.send_attempts) == ("failed", MAX_SEND_ATTEMPTS)
    assert len(responses.calls) == MAX_SEND_ATTEMPTS


@responses.activate
def test_retry_after_a_transient_error_sends_once(thread):
    responses.post(MESSAGES_URL, json={"code": 20500, "message": "down", "status": 500}, status=500)
    responses.post(MESSAGES_URL, json=created(), status=201)
    (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    with pytest.raises(TransientDeliveryError):
        message_deliver(message_id=message.pk)
    assert message_deliver(message_id=message.pk) == "sent"
    assert message_deliver(message_id=message.pk) == "skipped"
    assert len(responses.calls) == 2
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("sent", "")


@responses.activate
def test_read_timeout_is_never_repeated(thread):
    responses.post(MESSAGES_URL, body=requests.ReadTimeout("slow"))
    (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    assert message_deliver(message_id=message.pk) == "failed"
    assert message_deliver(message_id=message.pk) == "skipped"
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "send_unconfirmed")
    assert len(responses.calls) == 1


@responses.activate
def test_a_message_in_flight_elsewhere_is_not_sent_again(thread):
    # given: another worker claimed the message a moment ago and is waiting for Twilio
    from django.utils import timezone

    (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    Message.objects.filter(pk=message.pk).update(sending_since=timezone.now())

    # when / then
    assert message_deliver(message_id=message.pk) == "skipped"
    assert len(responses.calls) == 0


@responses.activate
def test_an_attempt_that_died_mid_request_is_failed_not_repeated(thread):
    from datetime import timedelta

    from django.utils import timezone

    (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    long_ago = timezone.now() - timedelta(hours=1)
    Message.objects.filter(pk=message.pk).update(sending_since=long_ago)
    assert message_deliver(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert message.error_code == "send_unconfirmed"
    assert len(responses.calls) == 0


@responses.activate
def test_opted_out_contact_gets_nothing_automated(thread):
    from conversations.services.consent import contact_opt_out

    # given: a reply queued before the contact opted out
    (queued,) = replies_store(thread=thread, replies=[Reply(text="hi")])
    contact_opt_out(contact=thread.contact, source="keyword")

    # when
    stored = replies_store(thread=thread, replies=[Reply(text="hello again")])

    # then
    assert stored == []
    assert message_deliver(message_id=queued.pk) == "failed"
    queued.refresh_from_db()
    assert queued.error_code == "opted_out"
    assert len(responses.calls) == 0


@responses.activate
def test_replies_go_out_in_order(thread):
    sids = iter(f"SM{n:032d}" for n in range(3))
    responses.add_callback(
        responses.POST,
        MESSAGES_URL,
        callback=lambda request: (201, {}, json.dumps(created(next(sids)))),
        content_type="application/json",
    )
    with run_on_commit():
        replies_store(
            thread=thread, replies=[Reply(text="one"), Reply(text="two"), Reply(text="three")]
        )
    assert [form(call)["Body"] for call in responses.calls] == ["one", "two", "three"]
    ordered = Message.objects.filter(direction="outbound").order_by("created_at")
    assert [m.provider_message_id for m in ordered] == [f"SM{n:032d}" for n in range(3)]


@responses.activate
def test_a_provider_id_already_held_is_recorded_as_sent_without_the_id(thread):
    # given: a message already holding the id the provider will answer with
    factories.MessageFactory(
        thread=thread,
        direction="outbound",
        sender="flow",
        status="sent",
        provider_message_id="SM0123456789abcdef0123456789abcdef",
    )
    responses.post(MESSAGES_URL, json=created(), status=201)
    (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])

    # when
    assert message_deliver(message_id=message.pk) == "sent"

    # then: not queued for another attempt
    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == ("sent", None)
    assert message.metadata["provider_id_conflict"] == "SM0123456789abcdef0123456789abcdef"
    assert message_deliver(message_id=message.pk) == "skipped"
    assert len(responses.calls) == 1


@responses.activate
def test_default_credentials_never_go_to_a_channel_base_url(thread):
    # given: a channel without credentials of its own, pointed somewhere else
    thread.channel.secrets = {}
    thread.channel.settings = {"api_base_url": "https://evil.test"}
    thread.channel.save()
    url = f"https://api.twilio.test/2010-04-01/Accounts/{settings.TWILIO_ACCOUNT_SID}/Messages.json"
    responses.post(url, json=created(), status=201)

    # when
    with run_on_commit():
        (message,) = replies_store(thread=thread, replies=[Reply(text="hi")])

    # then: the platform's credentials went to TWILIO_API_BASE_URL only
    message.refresh_from_db()
    assert message.status == "sent"
    assert [call.request.url for call in responses.calls] == [url]
