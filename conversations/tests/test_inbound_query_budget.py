"""One inbound text in a running flow costs a fixed number of queries, however long the
thread is: the webhook, the flow step, storing the reply and sending it."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.tests.webhook_support import post_twilio, twilio_params
from conversations.models import ChatThread, Message
from flows.services import flow_create
from tests import factories

pytestmark = pytest.mark.django_db

FITNESS = Path(__file__).resolve().parents[2] / "flows" / "examples" / "fitness-welcome.json"
if not FITNESS.exists():
    FITNESS = Path("/work/shared/examples/flows/fitness-welcome.json")
SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"
# The webhook (the channel is memoised; the contact's thread and the insert, which on
# PostgreSQL are one call of `conversations_inbound_store` running them server-side, see
# test_inbound_store_pg), the flow step (thread lock, pending messages, waiting session,
# session write, flow events, reply insert, processed mark, thread activity) and the send
# (the batch of queued replies: a locked read and a claim, one record of what was sent, and
# a last look for replies queued meanwhile); on PostgreSQL also the thread's sender lock
# (take, release).
BUDGET = 15


def _history(thread, count):
    start = timezone.now() - timedelta(days=1)
    Message.objects.bulk_create(
        [
            Message(
                tenant_id=thread.tenant_id,
                thread=thread,
                channel_id=thread.channel_id,
                direction="inbound" if n % 2 else "outbound",
                text=f"old message {n}",
                status="read",
                sender="contact" if n % 2 else "flow",
                processed_at=start,
                created_at=start + timedelta(milliseconds=n),
            )
            for n in range(count)
        ],
        batch_size=2000,
    )


def _in_flow(client, tenant, number, earlier):
    """A contact waiting at the fitness flow's "which day" input, with `earlier` old messages;
    return the statements of one more inbound text (answered with one reply)."""
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number=number)
    flow_create(tenant=tenant, channel=channel, definition=json.loads(FITNESS.read_text()))
    for n, body in enumerate(["Hello", "1"]):
        params = twilio_params("inbound_text", Body=body, To=f"whatsapp:{number}")
        params["MessageSid"] = params["SmsSid"] = params["SmsMessageSid"] = f"SM{number}w{n}"
        assert post_twilio(client, params, token="chan-token").status_code == 200
    _history(ChatThread.objects.get(channel=channel), earlier)
    calls_before = len(responses.calls)
    params = twilio_params("inbound_text", Body="2026-12-01", To=f"whatsapp:{number}")
    params["MessageSid"] = params["SmsSid"] = params["SmsMessageSid"] = f"SM{number}m"
    with CaptureQueriesContext(connection) as queries:
        assert post_twilio(client, params, token="chan-token").status_code == 200
    assert len(responses.calls) == calls_before + 1  # exactly one reply went out
    statements = [q["sql"] for q in queries.captured_queries]
    return [s for s in statements if "SAVEPOINT" not in s]


@responses.activate
def test_inbound_text_in_a_running_flow_has_a_fixed_query_count(client, tenant):
    # given: Twilio's API answering every send
    sids = (f"SM{n:032d}" for n in range(1000))
    responses.add_callback(
        responses.POST,
        TWILIO_URL,
        callback=lambda request: (201, {}, json.dumps({"sid": next(sids), "status": "queued"})),
    )

    # when: the same step in a thread with 10 and with 10,000 earlier messages
    short = _in_flow(client, tenant, "+15550000001", 10)
    long = _in_flow(client, tenant, "+15550000002", 10_000)

    # then
    assert len(short) == len(long), "\n".join(long)
    assert len(short) <= BUDGET, "\n".join(short)
    # receiving and running the flow (the webhook request without the send task): <= 12
    claim = next(i for i, sql in enumerate(short) if '"send_attempts" + 1' in sql)
    first_send = claim - (2 if connection.vendor == "postgresql" else 1)
    assert first_send <= 12, "\n".join(short[:first_send])
