"""process_pending: stale inbound processing and stuck sends are finished exactly once."""

import itertools
import json
from datetime import timedelta
from io import StringIO
from urllib.parse import parse_qs

import pytest
import responses
from django.core.management import CommandError, call_command
from django.utils import timezone

from conversations import tasks
from conversations.models import Message, MessageStatus
from conversations.services.pending import PendingReport, pending_process
from flows.services import FlowRun, Reply
from tests import factories

SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"


class TwilioAPI:
    """Twilio's Messages.json double: 201 with a fresh sid (or a scripted status)."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.sids = (f"SM{n:032x}" for n in itertools.count(1))
        self.bodies = []

    def __call__(self, request):
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        self.bodies.append(form.get("Body"))
        status = self.statuses.pop(0) if self.statuses else 201
        if status != 201:
            return status, {}, json.dumps({"code": 20500, "message": "down", "status": status})
        return 201, {}, json.dumps({"sid": next(self.sids), "status": "queued"})

    def install(self):
        responses.add_callback(responses.POST, TWILIO_URL, callback=self)
        return self


@pytest.fixture
def echo_flow(monkeypatch):
    """The flow answers every inbound text with one reply and records what it saw."""
    seen = []

    def handle(*, thread, message, **_):
        seen.append(message.pk)
        return FlowRun(replies=[Reply(text=f"echo {len(seen)}")])

    monkeypatch.setattr("conversations.services.process.flow_handle_inbound", handle)
    return seen


def _old(queryset, seconds=600):
    at = timezone.now() - timedelta(seconds=seconds)
    queryset.update(created_at=at, updated_at=at)


@pytest.fixture
def thread(twilio_channel):
    return factories.ThreadFactory(channel=twilio_channel, last_inbound_at=timezone.now())


@responses.activate
@pytest.mark.django_db(transaction=True)
def test_stale_inbound_is_processed_once_and_its_reply_sent_once(thread, echo_flow):
    # given an inbound message whose processing never ran, and a fresh one still in its task
    api = TwilioAPI().install()
    stale = factories.MessageFactory(thread=thread)
    _old(Message.objects.filter(pk=stale.pk))
    fresh_thread = factories.ThreadFactory(channel=thread.channel)
    fresh = factories.MessageFactory(thread=fresh_thread)

    # when
    report = pending_process()

    # then the stale one is handled and answered, the fresh one left alone
    assert echo_flow == [stale.pk]
    assert (report.threads, report.inbound_processed) == (1, 1)
    assert Message.objects.get(pk=stale.pk).processed_at is not None
    assert Message.objects.get(pk=fresh.pk).processed_at is None
    reply = Message.objects.get(thread=thread, direction="outbound")
    assert (reply.status, reply.text) == (MessageStatus.SENT, "echo 1")
    assert api.bodies == ["echo 1"]

    # and running again does nothing more
    again = pending_process()
    assert again.inbound_processed == 0 and echo_flow == [stale.pk]
    assert api.bodies == ["echo 1"]


@responses.activate
@pytest.mark.django_db(transaction=True)
def test_stuck_queued_replies_are_sent_once_in_order(thread):
    # given two replies queued long ago and never sent, and one queued just now behind them
    api = TwilioAPI().install()
    first, second = (
        factories.MessageFactory(
            thread=thread, direction="outbound", sender="flow", status="queued", text=t
        )
        for t in ("first", "second")
    )
    _old(Message.objects.filter(pk=first.pk), seconds=900)
    _old(Message.objects.filter(pk=second.pk), seconds=800)
    young = factories.MessageFactory(
        thread=thread, direction="outbound", sender="flow", status="queued", text="young"
    )

    # when run twice
    report = pending_process()
    again = pending_process()

    # then the thread's whole queue went out once, in order (the young reply too: it was
    # behind the stuck ones, and its own send task finds nothing left to send)
    assert api.bodies == ["first", "second", "young"]
    assert report.outbound_sent == 3 and again.outbound_sent == 0
    assert Message.objects.get(pk=young.pk).status == MessageStatus.SENT
    assert {m.status for m in Message.objects.filter(pk__in=[first.pk, second.pk])} == {"sent"}


@responses.activate
@pytest.mark.django_db(transaction=True)
def test_a_transient_failure_holds_the_threads_later_messages(thread):
    # given Twilio is down for the first attempt
    api = TwilioAPI(statuses=[503]).install()
    msgs = [
        factories.MessageFactory(
            thread=thread, direction="outbound", sender="flow", status="queued", text=t
        )
        for t in ("one", "two")
    ]
    for n, message in enumerate(msgs):
        _old(Message.objects.filter(pk=message.pk), seconds=900 - n)

    # when
    report = pending_process()

    # then nothing overtook the first message
    assert api.bodies == ["one"]
    assert report.outbound_retry_later == 2
    assert {m.status for m in Message.objects.filter(pk__in=[m.pk for m in msgs])} == {"queued"}

    # and once the grace period passed again, both go out in order
    later = timezone.now() + timedelta(minutes=5)
    report = pending_process(now=later)
    assert api.bodies == ["one", "one", "two"]
    assert report.outbound_sent == 2


@pytest.mark.django_db
def test_the_periodic_task_runs_the_service(monkeypatch):
    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        return PendingReport(threads=3)

    monkeypatch.setattr("conversations.services.pending.pending_process", fake)

    assert tasks.process_pending.apply().get()["threads"] == 3
    assert calls == [{}]
    assert tasks.process_pending.name == "conversations.tasks.process_pending"


@responses.activate
@pytest.mark.django_db(transaction=True)
def test_the_command_prints_counts(thread, echo_flow):
    TwilioAPI().install()
    stale = factories.MessageFactory(thread=thread)
    _old(Message.objects.filter(pk=stale.pk))
    out = StringIO()

    call_command("process_pending", stdout=out)

    assert "inbound_processed: 1" in out.getvalue()
    assert "outbound_sent: 0" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("args", [["--grace-seconds", "-1"], ["--limit", "0"]])
def test_the_command_rejects_bad_options(args):
    with pytest.raises(CommandError):
        call_command("process_pending", *args, stdout=StringIO())
