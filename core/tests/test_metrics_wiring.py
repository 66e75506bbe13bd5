"""The chatai metrics move when the pipeline runs: webhook in, flow ends, reply out, failure."""

import pytest
import responses
from prometheus_client import REGISTRY

from channels_app.tests.webhook_support import post_twilio, twilio_params
from flows.services import flow_create
from tests import factories

SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"
ONE_SHOT = {
    "schema_version": 1,
    "flow_id": "one-shot",
    "name": "One shot",
    "trigger": {"default": True},
    "start": "bye",
    "nodes": [{"id": "bye", "type": "end", "text": "Thanks, bye!"}],
}


def _value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


@responses.activate
@pytest.mark.django_db(transaction=True)
def test_a_conversation_moves_every_chatai_metric(client, tenant):
    # given a channel whose one flow ends at once, and Twilio refusing the first send
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    flow_create(tenant=tenant, channel=channel, definition=ONE_SHOT)
    responses.add(
        responses.POST,
        TWILIO_URL,
        status=400,
        json={"code": 21211, "message": "invalid", "status": 400},
    )
    before = {
        "in": _value("chatai_messages_total", direction="inbound"),
        "out": _value("chatai_messages_total", direction="outbound"),
        "latency": _value("chatai_webhook_latency_seconds_count", provider="twilio"),
        "completed": _value("chatai_flow_outcomes_total", outcome="completed"),
        "failed": _value("chatai_send_failures_total", provider="twilio", reason="21211"),
    }

    # when
    assert post_twilio(client, twilio_params("inbound_text"), token="chan-token").status_code == 200

    # then
    assert _value("chatai_messages_total", direction="inbound") == before["in"] + 1
    assert _value("chatai_messages_total", direction="outbound") == before["out"] + 1
    assert (
        _value("chatai_webhook_latency_seconds_count", provider="twilio") == before["latency"] + 1
    )
    assert _value("chatai_flow_outcomes_total", outcome="completed") == before["completed"] + 1
    assert (
        _value("chatai_send_failures_total", provider="twilio", reason="21211")
        == before["failed"] + 1
    )

    # and a duplicate delivery counts no second inbound message
    assert post_twilio(client, twilio_params("inbound_text"), token="chan-token").status_code == 200
    assert _value("chatai_messages_total", direction="inbound") == before["in"] + 1
