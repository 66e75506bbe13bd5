"""Waits for a human (`Handoff`): opened by a flow's handoff node or a takeover, answered by
the first agent message, ended when automation resumes, the thread closes or the contact is
erased; at most one open per thread."""

import importlib

import pytest
from django.apps import apps
from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.models import ChatThread, Handoff
from conversations.services.outbound import message_send_agent
from conversations.services.privacy import contact_erase
from conversations.services.threads import thread_update
from flows.services import flow_create
from flows.tests.support import flow_doc, receive
from tests import factories

pytestmark = pytest.mark.django_db

HANDOFF_FLOW = flow_doc(
    "h",
    trigger={"default": True},
    start="human",
    nodes=[{"id": "human", "type": "handoff", "text": "A person will answer.", "reason": "asked"}],
)


@pytest.fixture
def thread(twilio_channel):
    return factories.ThreadFactory(channel=twilio_channel)


def test_a_flow_handoff_opens_a_wait_that_the_first_agent_reply_answers(
    tenant, twilio_channel, thread
):
    # given a flow that hands off
    flow = flow_create(tenant=tenant, channel=twilio_channel, definition=HANDOFF_FLOW)
    before = timezone.now()

    # when the contact writes
    receive(thread, "hi")

    # then one open handoff from the flow's version
    handoff = Handoff.objects.get(thread=thread)
    assert (handoff.source, handoff.flow_id, handoff.tenant_id) == ("flow", flow.pk, tenant.pk)
    assert handoff.started_at >= before
    assert handoff.first_reply_at is None and handoff.ended_at is None

    # when an agent answers twice
    first = message_send_agent(thread=thread, text="Hello, Ana here.")
    message_send_agent(thread=thread, text="How can I help?")

    # then the first reply's time is kept
    handoff.refresh_from_db()
    assert handoff.first_reply_at == first.created_at

    # when automation resumes
    thread_update(thread=thread, needs_human=False)

    # then the wait is over
    handoff.refresh_from_db()
    assert handoff.ended_at is not None and handoff.ended_at >= handoff.first_reply_at


def test_a_takeover_opens_one_wait_and_closing_ends_it(thread):
    thread_update(thread=thread, needs_human=True)
    thread_update(thread=thread, needs_human=True)  # nothing changes: still one wait
    handoff = Handoff.objects.get(thread=thread)
    assert handoff.source == "agent" and handoff.flow_id is None

    thread_update(thread=thread, status="closed")

    handoff.refresh_from_db()
    assert handoff.ended_at is not None
    # a later takeover is a new wait
    thread_update(thread=thread, status="open", needs_human=True)
    assert Handoff.objects.filter(thread=thread).count() == 2
    assert Handoff.objects.filter(thread=thread, ended_at__isnull=True).count() == 1


def test_an_agent_reply_without_a_wait_records_nothing(thread):
    factories.MessageFactory(thread=thread)  # the contact wrote: the window is open
    ChatThread.objects.filter(pk=thread.pk).update(last_inbound_at=timezone.now())
    thread.refresh_from_db()
    message_send_agent(thread=thread, text="Hi!")
    assert not Handoff.objects.exists()


def test_a_reply_after_the_wait_ended_does_not_count(thread):
    factories.MessageFactory(thread=thread)
    thread_update(thread=thread, needs_human=True)
    thread_update(thread=thread, needs_human=False)
    message_send_agent(thread=thread, text="Late answer")
    assert Handoff.objects.get(thread=thread).first_reply_at is None


def test_erasure_ends_the_wait(thread):
    thread_update(thread=thread, needs_human=True)
    contact_erase(contact=thread.contact)
    assert Handoff.objects.get(thread=thread).ended_at is not None


def test_the_database_refuses_a_second_open_wait(thread):
    now = timezone.now()
    Handoff.objects.create(
        tenant_id=thread.tenant_id, thread=thread, source="agent", started_at=now
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Handoff.objects.create(
            tenant_id=thread.tenant_id, thread=thread, source="flow", started_at=now
        )


def test_the_migration_opens_a_wait_for_threads_already_waiting(twilio_channel):
    # given: threads that waited before handoffs were recorded
    waiting = factories.ThreadFactory(channel=twilio_channel, needs_human=True)
    factories.ThreadFactory(channel=twilio_channel, needs_human=True, status="closed")
    factories.ThreadFactory(channel=twilio_channel)
    migration = importlib.import_module("conversations.migrations.0010_handoffs")

    # when
    migration.open_handoffs_for_waiting_threads(apps, None)

    # then: only the open one waiting gets a wait, started at its last change
    handoff = Handoff.objects.get()
    assert handoff.thread_id == waiting.pk
    assert handoff.started_at == waiting.updated_at and handoff.ended_at is None
