"""Question/input timeouts and stale sessions: flow_fire_due_timeouts and friends."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.models import ChatThread, Message
from conversations.services import process as services
from conversations.services.process import flow_expire_stale_sessions, flow_fire_due_timeouts
from flows.models import FlowSession, SessionStatus
from flows.services import flow_create
from flows.tasks import process_flow_timeouts
from flows.tests.support import example, flow_doc, receive
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(twilio_channel):
    return factories.ThreadFactory(channel=twilio_channel, contact__name="Maria")


@pytest.fixture
def fitness(tenant, twilio_channel):
    return flow_create(tenant=tenant, channel=twilio_channel, definition=example("fitness-welcome"))


def _outbound_texts(thread):
    return list(
        Message.objects.filter(thread=thread, direction="outbound", sender="flow")
        .order_by("created_at")
        .values_list("text", flat=True)
    )


def test_due_timeout_moves_the_flow_on_and_stores_replies(fitness, thread):
    # given the fitness menu question waiting with a one-hour timeout
    receive(thread, "hi")
    session = FlowSession.objects.get(thread=thread)
    assert session.current_node == "menu"
    due = session.wait_expires_at
    assert due == session.waiting_since + timedelta(hours=1)
    assert session.stale_at is None  # a timed wait does not go stale
    before = len(_outbound_texts(thread))

    # when the timer runs too early, nothing happens
    assert flow_fire_due_timeouts(now=due - timedelta(seconds=1)) == 0

    # when it runs once due
    assert flow_fire_due_timeouts(now=due) == 1

    # then the flow went on to "bye" and the reply is queued for sending
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETED
    outbound = _outbound_texts(thread)
    assert outbound[before:] == ["Thanks for reaching out, Maria!"]
    assert Message.objects.filter(thread=thread, status="queued").count() == len(outbound)
    # and a second run fires nothing
    assert flow_fire_due_timeouts(now=due + timedelta(hours=1)) == 0


def test_timeout_fires_only_for_the_current_wait(tenant, twilio_channel, thread):
    # given a question with a 60 s timeout, answered wrongly after 30 s (a new wait)
    doc = flow_doc("t")
    doc["trigger"] = {"default": True}
    doc["nodes"][0]["timeout"] = {"seconds": 60, "next": "done_no"}
    flow_create(tenant=tenant, channel=twilio_channel, definition=doc)
    receive(thread, "hi")
    FlowSession.objects.filter(thread=thread).update(
        waiting_since=timezone.now() - timedelta(seconds=30),
        wait_expires_at=timezone.now() + timedelta(seconds=30),
    )
    session = FlowSession.objects.get(thread=thread)
    first_wait = session.wait_seq
    first_due = session.wait_expires_at
    receive(thread, "maybe")
    session.refresh_from_db()
    assert session.wait_seq == first_wait + 1
    assert session.wait_expires_at > first_due

    # when a timer for the first wait arrives late
    fired = services._fire_one(session.pk, thread.pk, first_wait, first_due + timedelta(days=1))

    # then it does not move the conversation
    assert fired is False
    session.refresh_from_db()
    assert session.status == SessionStatus.WAITING
    assert session.wait_seq == first_wait + 1

    # and the periodic run respects the new deadline
    assert flow_fire_due_timeouts(now=first_due + timedelta(seconds=1)) == 0
    assert flow_fire_due_timeouts(now=session.wait_expires_at) == 1
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETED
    assert _outbound_texts(thread)[-1] == "[t] You said no."


def test_answered_question_never_times_out(fitness, thread):
    receive(thread, "hi")
    due = FlowSession.objects.get(thread=thread).wait_expires_at
    receive(thread, "prices")  # now waiting at after_prices (no timeout)

    assert flow_fire_due_timeouts(now=due + timedelta(minutes=1)) == 0
    assert FlowSession.objects.get(thread=thread).current_node == "after_prices"


def test_timeout_on_a_paused_thread_ends_the_session_silently(fitness, thread):
    receive(thread, "hi")
    session = FlowSession.objects.get(thread=thread)
    ChatThread.objects.filter(pk=thread.pk).update(needs_human=True)
    before = _outbound_texts(thread)

    assert flow_fire_due_timeouts(now=session.wait_expires_at) == 0

    session.refresh_from_db()
    assert session.status == SessionStatus.INTERRUPTED
    assert _outbound_texts(thread) == before


def test_stale_sessions_expire_silently(tenant, twilio_channel):
    # given two waits without node timeouts (one old, one fresh) and one timed wait
    doc = flow_doc("s", trigger={"default": True}, settings={"session_timeout_seconds": 600})
    flow_create(tenant=tenant, channel=twilio_channel, definition=doc)
    old, fresh = (factories.ThreadFactory(channel=twilio_channel) for _ in range(2))
    receive(old, "hi")
    receive(fresh, "hi")
    old_session = FlowSession.objects.get(thread=old)
    FlowSession.objects.filter(pk=old_session.pk).update(
        waiting_since=timezone.now() - timedelta(seconds=601),
        stale_at=timezone.now() - timedelta(seconds=1),
    )
    messages_before = Message.objects.count()

    # when
    expired = flow_expire_stale_sessions(now=timezone.now())

    # then only the old one expired, and nothing was sent
    assert expired == 1
    old_session.refresh_from_db()
    assert old_session.status == SessionStatus.EXPIRED
    assert old_session.ended_at is not None
    assert FlowSession.objects.get(thread=fresh).status == SessionStatus.WAITING
    assert Message.objects.count() == messages_before


def test_stale_at_is_checked_again_by_the_engine(tenant, twilio_channel, thread):
    doc = flow_doc("s", trigger={"default": True}, settings={"session_timeout_seconds": 600})
    flow_create(tenant=tenant, channel=twilio_channel, definition=doc)
    receive(thread, "hi")
    # an index value that says "due" while the wait itself is recent (e.g. clock skew)
    FlowSession.objects.filter(thread=thread).update(stale_at=timezone.now() - timedelta(days=1))

    assert flow_expire_stale_sessions(now=timezone.now()) == 0
    assert FlowSession.objects.get(thread=thread).status == SessionStatus.WAITING


def test_command_and_task_fire_and_expire(fitness, thread, tenant, twilio_channel):
    receive(thread, "hi")
    FlowSession.objects.filter(thread=thread).update(
        wait_expires_at=timezone.now() - timedelta(seconds=1)
    )
    other = factories.ThreadFactory(channel=twilio_channel)
    receive(other, "hi")
    receive(other, "other")  # waiting in the AI node: no node timeout
    FlowSession.objects.filter(thread=other).update(
        waiting_since=timezone.now() - timedelta(days=2),
        stale_at=timezone.now() - timedelta(days=1),
    )

    out = StringIO()
    call_command("process_flow_timeouts", stdout=out)

    assert out.getvalue().strip() == "Fired 1 timeout(s), expired 1 stale session(s)."
    assert process_flow_timeouts.name == "flows.tasks.process_flow_timeouts"
    assert process_flow_timeouts.apply().get() == {"fired": 0, "expired": 0}


YES_OR_NO = flow_doc(
    "t",
    trigger={"default": True},
    start="ask",
    nodes=[
        {
            "id": "ask",
            "type": "question",
            "text": "Yes or no?",
            "choices": [
                {"id": "yes", "label": "Yes", "next": "y"},
                {"id": "no", "label": "No", "next": "n"},
            ],
            "timeout": {"seconds": 60, "next": "late"},
        },
        {"id": "y", "type": "end", "text": "You said yes"},
        {"id": "n", "type": "end", "text": "You said no"},
        {"id": "late", "type": "end", "text": "No answer, bye"},
    ],
)


def test_a_reply_stored_before_the_deadline_beats_the_timeout(tenant, twilio_channel, thread):
    # given: a question waiting, and the answer stored 10 s before its deadline but not
    # processed yet (a backlog)
    from conversations.services.process import thread_process_inbound

    flow_create(tenant=tenant, channel=twilio_channel, definition=YES_OR_NO)
    receive(thread, "hi")
    Message.objects.filter(thread=thread).update(processed_at=timezone.now())
    deadline = FlowSession.objects.get(thread=thread).wait_expires_at
    answer = factories.MessageFactory(thread=thread, text="yes")
    Message.objects.filter(pk=answer.pk).update(created_at=deadline - timedelta(seconds=10))

    # when: the timer runs after the deadline, then the backlog is processed
    fired = flow_fire_due_timeouts(now=deadline + timedelta(seconds=1))
    thread_process_inbound(thread_id=thread.pk)

    # then: the answer counted, the timeout did not
    assert fired == 0
    assert _outbound_texts(thread)[-1] == "You said yes"
    assert "No answer, bye" not in _outbound_texts(thread)


def test_a_switched_off_tenant_gets_no_timeout_message(tenant, twilio_channel, thread):
    flow_create(tenant=tenant, channel=twilio_channel, definition=YES_OR_NO)
    receive(thread, "hi")
    Message.objects.filter(thread=thread).update(processed_at=timezone.now())
    deadline = FlowSession.objects.get(thread=thread).wait_expires_at
    tenant.is_active = False
    tenant.save()

    assert flow_fire_due_timeouts(now=deadline + timedelta(seconds=1)) == 0
    assert "No answer, bye" not in _outbound_texts(thread)
    assert FlowSession.objects.get(thread=thread).status == SessionStatus.INTERRUPTED


def test_a_timeout_that_leads_to_a_handoff_hands_the_thread_to_a_person(
    tenant, twilio_channel, thread, monkeypatch
):
    # given a question whose timeout goes to a handoff node
    from conversations.models import Handoff
    from integrations import events

    doc = flow_doc("h")
    doc["trigger"] = {"default": True}
    doc["nodes"][0]["timeout"] = {"seconds": 60, "next": "person"}
    doc["nodes"].append(
        {"id": "person", "type": "handoff", "text": "A person will answer.", "reason": "quiet"}
    )
    flow_create(tenant=tenant, channel=twilio_channel, definition=doc)
    receive(thread, "hi")
    announced: list[tuple[str, str]] = []
    real = events.thread_handoff
    monkeypatch.setattr(
        events,
        "thread_handoff",
        lambda t, *, reason, by: announced.append((reason, by)) or real(t, reason=reason, by=by),
    )
    due = FlowSession.objects.get(thread=thread).wait_expires_at

    # when the timer fires
    assert flow_fire_due_timeouts(now=due) == 1

    # then the thread waits for a person, with one handoff from the flow, announced once
    thread.refresh_from_db()
    assert thread.needs_human is True
    handoff = Handoff.objects.get(thread=thread)
    assert handoff.source == "flow" and handoff.ended_at is None
    assert [by for _reason, by in announced] == ["flow"]
    assert _outbound_texts(thread)[-1] == "A person will answer."
