"""Delivery statuses from both providers: applied by provider id, never backwards."""

import pytest

from conversations.models import Message
from tests import factories

from .webhook_support import cloud_payload, post_cloud, post_twilio, twilio_params

pytestmark = pytest.mark.django_db


def outbound(thread, provider_message_id, status="sent"):
    return factories.MessageFactory(
        thread=thread,
        direction="outbound",
        sender="flow",
        status=status,
        provider_message_id=provider_message_id,
    )


@pytest.fixture
def twilio_thread(wa_twilio_channel):
    return factories.ThreadFactory(channel=wa_twilio_channel)


@pytest.fixture
def cloud_thread(cloud_channel):
    return factories.ThreadFactory(channel=cloud_channel)


def twilio_status(client, sid, status, **extra):
    params = twilio_params("status_delivered", MessageSid=sid, SmsSid=sid, MessageStatus=status)
    params.update(extra)
    return post_twilio(client, params, token="chan-token")


def test_twilio_statuses_in_order(client, twilio_thread):
    message = outbound(twilio_thread, "SMabc", status="sent")
    for status in ("sent", "delivered", "read"):
        assert twilio_status(client, "SMabc", status).status_code == 200
        message.refresh_from_db()
        assert message.status == status
    assert message.sent_at and message.delivered_at and message.read_at


def test_twilio_statuses_out_of_order_never_move_backwards(client, twilio_thread):
    # given
    message = outbound(twilio_thread, "SMabc", status="sent")

    # when: read arrives before delivered and sent, then a late "sending"
    for status in ("read", "delivered", "sent", "sending", "queued"):
        assert twilio_status(client, "SMabc", status).status_code == 200

    # then
    message.refresh_from_db()
    assert message.status == "read"
    assert message.read_at is not None
    assert message.delivered_at is not None  # read implies delivered


def test_twilio_undelivered_records_error_after_any_state(client, twilio_thread):
    message = outbound(twilio_thread, "SM5d6e7f8091a2b3c4d5e6f708192a3b4c", status="delivered")
    response = post_twilio(client, twilio_params("status_undelivered"), token="chan-token")
    assert response.status_code == 200
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "63016")
    assert "outside the allowed window" in message.error_detail
    # a late "delivered" does not resurrect it
    twilio_status(client, message.provider_message_id, "delivered")
    message.refresh_from_db()
    assert message.status == "failed"


def test_twilio_status_for_unknown_message_is_acknowledged(client, twilio_thread):
    response = twilio_status(client, "SMnot-ours", "delivered")
    assert response.status_code == 200
    assert not Message.objects.filter(provider_message_id="SMnot-ours").exists()


def test_status_is_scoped_to_its_channel(client, twilio_thread, tenant):
    # given: the same provider id on another channel
    other_channel = factories.TwilioChannelFactory(tenant=tenant)
    other = outbound(factories.ThreadFactory(channel=other_channel), "SMsame", status="sent")
    mine = outbound(twilio_thread, "SMsame", status="sent")

    # when
    twilio_status(client, "SMsame", "read")

    # then
    mine.refresh_from_db()
    other.refresh_from_db()
    assert (mine.status, other.status) == ("read", "sent")


def test_twilio_status_with_bad_signature_changes_nothing(client, twilio_thread):
    message = outbound(twilio_thread, "SMabc", status="sent")
    params = twilio_params("status_delivered", MessageSid="SMabc", SmsSid="SMabc")
    assert post_twilio(client, params, token="wrong").status_code == 403
    message.refresh_from_db()
    assert message.status == "sent"


def test_cloud_api_status_batch_out_of_order(client, cloud_thread):
    # given: the batch says read, delivered, sent for one message and failed for another
    first = outbound(cloud_thread, "wamid.OUTBOUND0001", status="sent")
    second = outbound(cloud_thread, "wamid.OUTBOUND0002", status="sent")
    payload = cloud_payload("statuses", cloud_thread.channel.settings["phone_number_id"])

    # when
    response = post_cloud(client, payload)

    # then
    assert response.status_code == 200
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "read"
    assert first.read_at.timestamp() == 1750263773
    assert first.delivered_at.timestamp() == 1750263770
    assert (second.status, second.error_code) == ("failed", "131047")
    assert second.error_detail.startswith("Message failed to send because more than 24 hours")
