"""Concurrent webhook deliveries against PostgreSQL, with real threads and connections:
duplicates are stored and answered once, and a thread's messages are handled one at a time,
in order, each exactly once."""

import json
import threading
from pathlib import Path

import pytest
import responses
from django.db import connection
from django.test import Client

from channels_app.tests.webhook_support import post_twilio, twilio_params
from conversations.models import ChatThread, Contact, Message
from flows.services import FlowRun, Reply, flow_create
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

FITNESS = Path(__file__).resolve().parents[2] / "flows" / "examples" / "fitness-welcome.json"
if not FITNESS.exists():
    FITNESS = Path("/work/shared/examples/flows/fitness-welcome.json")
SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"


def run_concurrently(jobs):
    """Start every job at the same moment, each in its own thread and connection."""
    barrier = threading.Barrier(len(jobs))
    results, errors = [None] * len(jobs), []

    def worker(index, job):
        try:
            barrier.wait()
            results[index] = job()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


class TwilioApi:
    """A thread-safe recorder of Twilio Messages.json posts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.bodies = []

    def __call__(self, request):
        from urllib.parse import parse_qs

        with self.lock:
            self.bodies.append(parse_qs(request.body)["Body"][0])
            sid = f"SM{len(self.bodies):032d}"
        return 201, {}, json.dumps({"sid": sid, "status": "queued"})


@responses.activate
def test_concurrent_duplicates_give_one_message_and_one_reply(tenant):
    # given: the fitness flow, and the same delivery about to arrive 8 times at once
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    flow_create(tenant=tenant, channel=channel, definition=json.loads(FITNESS.read_text()))
    api = TwilioApi()
    responses.add_callback(responses.POST, TWILIO_URL, callback=api)
    params = twilio_params("inbound_text")

    # when
    statuses = run_concurrently(
        [lambda: post_twilio(Client(), params, token="chan-token").status_code] * 8
    )

    # then
    assert statuses == [200] * 8
    assert Message.objects.filter(direction="inbound").count() == 1
    assert Contact.objects.count() == 1
    assert ChatThread.objects.count() == 1
    assert api.bodies == [
        f"Hi Maria Silva! Welcome to {tenant.name}.",
        "How can we help you today?\n\n1. Book a free trial\n2. Membership prices\n"
        "3. Something else",
    ]
    assert Message.objects.filter(direction="outbound", status="sent").count() == 2


@responses.activate
def test_concurrent_messages_of_one_thread_are_handled_in_order_once(tenant, monkeypatch):
    # given: a flow stand-in that records what it saw (it runs under the thread lock) and
    # echoes it, and 12 different messages from one new contact arriving at once
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    api = TwilioApi()
    responses.add_callback(responses.POST, TWILIO_URL, callback=api)
    seen, inside = [], []

    def handle(*, thread, message, **_):
        inside.append(1)
        assert len(inside) == 1, "two messages of one thread were handled at the same time"
        seen.append(message.text)
        inside.pop()
        return FlowRun(replies=[Reply(text=f"echo {message.text}")])

    monkeypatch.setattr("conversations.services.process.flow_handle_inbound", handle)

    def deliver(n):
        params = twilio_params("inbound_text", Body=f"message {n}")
        params["MessageSid"] = params["SmsSid"] = params["SmsMessageSid"] = f"SMc{n:030d}"
        return lambda: post_twilio(Client(), params, token="chan-token").status_code

    # when
    statuses = run_concurrently([deliver(n) for n in range(12)])

    # then: one contact and thread, every message handled exactly once, in arrival order
    assert statuses == [200] * 12
    assert Contact.objects.count() == 1
    thread = ChatThread.objects.get(channel=channel)
    arrival = list(
        thread.messages.filter(direction="inbound")
        .order_by("created_at", "id")
        .values_list("text", flat=True)
    )
    assert len(arrival) == 12
    assert seen == arrival
    assert not thread.messages.filter(direction="inbound", processed_at__isnull=True).exists()
    replies = list(
        thread.messages.filter(direction="outbound")
        .order_by("created_at")
        .values_list("text", flat=True)
    )
    assert replies == [f"echo {text}" for text in arrival]
    assert sorted(api.bodies) == sorted(replies)
    thread.refresh_from_db()
    assert (
        thread.last_inbound_at
        == thread.messages.filter(direction="inbound").latest("created_at").created_at
    )
