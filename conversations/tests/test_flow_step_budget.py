"""#16 item 1: a flow step with its replies costs a small, fixed number of statements.

An inbound text answers a waiting question and the flow sends two replies ("prices": a
message and the next question). From the start of processing (after the webhook stored the
message) to both replies recorded as sent: at most 12 statements, the same with 10 or with
10,000 earlier messages and flow sessions in the contact's thread.
"""

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
from flows.models import FlowSession
from flows.services import flow_create
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

FITNESS = Path(__file__).resolve().parents[2] / "flows" / "examples" / "fitness-welcome.json"
SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"
BUDGET = 12


def _history(thread: ChatThread, count: int) -> None:
    """`count` earlier messages and `count // 10` finished flow sessions in the thread."""
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
    running = FlowSession.objects.get(thread=thread)
    FlowSession.objects.bulk_create(
        [
            FlowSession(
                tenant_id=thread.tenant_id,
                thread=thread,
                flow_id=running.flow_id,
                status="completed",
                current_node="bye",
                ended_at=start,
                created_at=start - timedelta(minutes=n),
            )
            for n in range(max(count // 10, 1))
        ],
        batch_size=2000,
    )


def _step(client, tenant, number: str, earlier: int) -> list[str]:
    """A contact waiting at the fitness flow's menu, with `earlier` old messages, answers
    "prices"; return the statements from the start of processing to the last reply recorded
    as sent."""
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number=number)
    flow_create(tenant=tenant, channel=channel, definition=json.loads(FITNESS.read_text()))
    params = twilio_params("inbound_text", Body="Hello", To=f"whatsapp:{number}")
    params["MessageSid"] = params["SmsSid"] = params["SmsMessageSid"] = f"SM{number}hello"
    assert post_twilio(client, params, token="chan-token").status_code == 200
    _history(ChatThread.objects.get(channel=channel), earlier)
    calls_before = len(responses.calls)
    params = twilio_params("inbound_text", Body="prices", To=f"whatsapp:{number}")
    params["MessageSid"] = params["SmsSid"] = params["SmsMessageSid"] = f"SM{number}prices"
    with CaptureQueriesContext(connection) as queries:
        assert post_twilio(client, params, token="chan-token").status_code == 200
    assert len(responses.calls) == calls_before + 2  # both replies went out
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    stored = next(i for i, sql in enumerate(statements) if "conversations_inbound_store" in sql)
    recorded = max(i for i, sql in enumerate(statements) if "'sent'" in sql)
    return statements[stored + 1 : recorded + 1]


@responses.activate
def test_a_flow_step_with_two_replies_costs_at_most_twelve_statements(client, tenant):
    # given: Twilio's API answering every send
    sids = (f"SM{n:032d}" for n in range(1000))
    responses.add_callback(
        responses.POST,
        TWILIO_URL,
        callback=lambda request: (201, {}, json.dumps({"sid": next(sids), "status": "queued"})),
    )

    # when: the same step in a thread with 10 and with 10,000 earlier messages
    short = _step(client, tenant, "+15550000001", 10)
    long = _step(client, tenant, "+15550000002", 10_000)

    # then
    assert len(short) == len(long), "\n".join(long)
    assert len(short) <= BUDGET, f"{len(short)} statements:\n" + "\n".join(
        sql[:160] for sql in short
    )
