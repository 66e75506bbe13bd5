"""flow_handle_inbound: consent, pauses, selection, sessions, interruption, versions."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.models import ChatThread
from conversations.services.consent import OPT_IN_CONFIRMATION, OPT_OUT_CONFIRMATION
from flows import selectors
from flows.models import FlowSession, SessionStatus
from flows.services import (
    flow_create,
    flow_set_active,
)
from flows.tests.support import (
    example,
    flow_doc,
    private_cache,  # noqa: F401 - a fixture used by name
    receive,
    texts,
)
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(twilio_channel):
    return factories.ThreadFactory(channel=twilio_channel, contact__name="Maria")


def _session(thread):
    return FlowSession.objects.filter(thread=thread).order_by("-created_at").first()


def test_no_active_flow_means_no_reply(thread):
    assert receive(thread, "hello") == []
    assert not FlowSession.objects.exists()


def test_default_flow_starts_waits_and_resumes_from_the_database(tenant, twilio_channel, thread):
    # given
    flow_create(
        tenant=tenant, channel=twilio_channel, definition=flow_doc("a", trigger={"default": True})
    )

    # when
    first = receive(thread, "hello there")

    # then the question went out with its choices and the session waits in the DB
    assert texts(first) == ["[a] Yes or no?"]
    assert first[0].choices == (("yes", "Yes"), ("no", "No"))
    session = _session(thread)
    assert session.status == SessionStatus.WAITING
    assert session.current_node == "ask"
    assert session.wait_seq == 1
    assert session.waiting_since is not None
    assert session.stale_at == session.waiting_since + timedelta(seconds=86400)

    # when another "process" picks up the reply (no in-process state survives)
    selectors._parsed._items.clear()
    reply = receive(thread, "2")

    # then
    assert texts(reply) == ["[a] You said no."]
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETED
    assert session.variables == {"answer": "no"}
    assert session.ended_at is not None
    assert session.stale_at is None


def test_interactive_reply_matches_by_id(tenant, twilio_channel, thread):
    flow_create(
        tenant=tenant, channel=twilio_channel, definition=flow_doc("a", trigger={"default": True})
    )
    receive(thread, "hi")

    assert texts(receive(thread, "Yes please!", interactive_id="yes")) == ["[a] You said yes."]


def test_keyword_flow_wins_over_default(tenant, twilio_channel, thread):
    flow_create(
        tenant=tenant, channel=twilio_channel, definition=flow_doc("a", trigger={"default": True})
    )
    flow_create(
        tenant=tenant,
        channel=twilio_channel,
        definition=flow_doc("b", trigger={"keywords": ["promo"]}),
    )

    assert texts(receive(thread, "PROMO please")) == ["[b] Yes or no?"]


def test_weighted_default_flows_are_sticky_per_contact(tenant, twilio_channel):
    # given two default flows, 50/50
    for flow_id in ("va", "vb"):
        flow_create(
            tenant=tenant,
            channel=twilio_channel,
            definition=flow_doc(flow_id, trigger={"default": True, "weight": 50}),
        )
    threads = [factories.ThreadFactory(channel=twilio_channel) for _ in range(16)]

    # when every contact starts, finishes, and starts again
    first_variant = {}
    for thread in threads:
        first_variant[thread.pk] = receive(thread, "hi")[0].text[:4]
        receive(thread, "yes")
    second_variant = {thread.pk: receive(thread, "hi again")[0].text[:4] for thread in threads}

    # then each contact got the same variant both times, and both variants were used
    assert first_variant == second_variant
    assert set(first_variant.values()) == {"[va]", "[vb]"}


def test_variant_survives_a_new_version_of_the_flow(tenant, twilio_channel):
    for flow_id in ("va", "vb"):
        flow_create(
            tenant=tenant,
            channel=twilio_channel,
            definition=flow_doc(flow_id, trigger={"default": True, "weight": 50}),
        )
    thread = factories.ThreadFactory(channel=twilio_channel)
    before = receive(thread, "hi")[0].text[:4]
    receive(thread, "no")

    flow_create(
        tenant=tenant,
        channel=twilio_channel,
        definition=flow_doc(before.strip("[]"), trigger={"default": True, "weight": 50}),
    )

    assert receive(thread, "hi")[0].text[:4] == before


def test_keyword_of_another_flow_interrupts_a_waiting_session(tenant, twilio_channel, thread):
    flow_create(
        tenant=tenant, channel=twilio_channel, definition=flow_doc("a", trigger={"default": True})
    )
    flow_create(
        tenant=tenant,
        channel=twilio_channel,
        definition=flow_doc("b", trigger={"keywords": ["promo"]}),
    )
    receive(thread, "hi")
    waiting = _session(thread)

    replies = receive(thread, "promo")

    assert texts(replies) == ["[b] Yes or no?"]
    waiting.refresh_from_db()
    assert waiting.status == SessionStatus.INTERRUPTED
    assert waiting.ended_at is not None
    current = FlowSession.objects.get(thread=thread, status=SessionStatus.WAITING)
    assert current.flow.flow_id == "b"


def test_ignore_keywords_keeps_the_session(tenant, twilio_channel, thread):
    flow_create(
        tenant=tenant,
        channel=twilio_channel,
        definition=flow_doc("a", trigger={"default": True}, settings={"ignore_keywords": True}),
    )
    flow_create(
        tenant=tenant,
        channel=twilio_channel,
        definition=flow_doc("b", trigger={"keywords": ["promo"]}),
    )
    receive(thread, "hi")

    replies = receive(thread, "promo")

    # "promo" is no answer to a's question: a re-prompts instead of b starting
    assert texts(replies) == ["1. Yes\n2. No"]
    assert FlowSession.objects.get(thread=thread, status=SessionStatus.WAITING).flow.flow_id == "a"


def test_own_keyword_does_not_restart_the_waiting_flow(tenant, twilio_channel, thread):
    flow_create(
        tenant=tenant,
        channel=twilio_channel,
        definition=flow_doc("a", trigger={"keywords": ["yes", "go"]}),
    )
    receive(thread, "go")

    assert texts(receive(thread, "yes")) == ["[a] You said yes."]


def test_session_finishes_on_the_version_it_started_with(tenant, twilio_channel, thread):
    # given a session waiting on version 1
    v1 = flow_create(
        tenant=tenant, channel=twilio_channel, definition=flow_doc("a", trigger={"default": True})
    )
    receive(thread, "hi")

    # when version 2 (different texts) becomes active
    doc = flow_doc("a", trigger={"default": True})
    doc["nodes"][1]["text"] = "Version two says yes."
    v2 = flow_create(tenant=tenant, channel=twilio_channel, definition=doc)
    assert v2.version == 2

    # then the running session answers with version 1
    assert texts(receive(thread, "yes")) == ["[a] You said yes."]
    assert _session(thread).flow_id == v1.pk
    # and the next conversation uses version 2
    receive(thread, "hi")
    assert texts(receive(thread, "yes")) == ["Version two says yes."]


def test_deactivated_flow_still_finishes_running_sessions(tenant, twilio_channel, thread):
    flow = flow_create(
        tenant=tenant, channel=twilio_channel, definition=flow_doc("a", trigger={"default": True})
    )
    receive(thread, "hi")
    flow_set_active(flow=flow, is_active=False)

    assert texts(receive(thread, "yes")) == ["[a] You said yes."]
    assert receive(thread, "hi") == []


def test_stale_session_expires_and_a_new_one_starts(tenant, twilio_channel, thread):
    flow_create(
        tenant=tenant,
        channel=twilio_channel,
        definition=flow_doc(
            "a", trigger={"default": True}, settings={"session_timeout_seconds": 60}
        ),
    )
    receive(thread, "hi")
    old = _session(thread)
    FlowSession.objects.filter(pk=old.pk).update(
        waiting_since=timezone.now() - timedelta(seconds=61)
    )

    replies = receive(thread, "yes")

    # "yes" did not answer the stale question: the session expired and a new one started
    assert texts(replies) == ["[a] Yes or no?"]
    old.refresh_from_db()
    assert old.status == SessionStatus.EXPIRED
    assert FlowSession.objects.filter(thread=thread, status=SessionStatus.WAITING).count() == 1


def test_opt_out_keyword_interrupts_and_confirms_once(tenant, twilio_channel, thread):
    flow_create(
        tenant=tenant, channel=twilio_channel, definition=flow_doc("a", trigger={"default": True})
    )
    receive(thread, "hi")

    replies = receive(thread, "  STOP! ")

    assert len(replies) == 1
    assert replies[0].text.startswith(OPT_OUT_CONFIRMATION["en"])
    assert '"START"' in replies[0].text
    thread.contact.refresh_from_db()
    assert thread.contact.is_opted_out
    assert _session(thread).status == SessionStatus.INTERRUPTED
    # nothing automated afterwards, not even a flow start
    assert receive(thread, "hi") == []
    assert receive(thread, "yes") == []


def test_opt_in_keyword_restores_automation(tenant, twilio_channel, thread):
    flow_create(
        tenant=tenant, channel=twilio_channel, definition=flow_doc("a", trigger={"default": True})
    )
    receive(thread, "stop")

    replies = receive(thread, "Start")

    assert texts(replies) == [OPT_IN_CONFIRMATION["en"]]
    thread.contact.refresh_from_db()
    assert not thread.contact.is_opted_out
    assert thread.contact.opt_in_source == "keyword"
    assert texts(receive(thread, "hi")) == ["[a] Yes or no?"]


def test_tenant_keyword_lists_are_used(twilio_channel, thread):
    tenant = thread.tenant
    tenant.opt_out_keywords = ["basta"]
    tenant.opt_in_keywords = ["volver"]
    tenant.save()
    tenant.config.language = "es"
    tenant.config.save()

    assert receive(thread, "stop") == []  # not this tenant's keyword: no flow, no opt-out
    thread.contact.refresh_from_db()
    assert not thread.contact.is_opted_out

    replies = receive(thread, "Basta")
    assert replies[0].text.startswith(OPT_OUT_CONFIRMATION["es"])
    assert '"VOLVER"' in replies[0].text
    assert texts(receive(thread, "volver")) == [OPT_IN_CONFIRMATION["es"]]


def test_opt_out_confirmation_uses_the_waiting_flow_language(tenant, twilio_channel, thread):
    flow_create(tenant=tenant, channel=twilio_channel, definition=example("clinica-agendamento"))
    receive(thread, "oi")

    replies = receive(thread, "parar")

    assert replies[0].text.startswith(OPT_OUT_CONFIRMATION["pt"])


def test_handoff_pauses_automation_until_cleared(tenant, twilio_channel, thread):
    # given a flow that hands off
    doc = flow_doc(
        "h",
        trigger={"default": True},
        start="human",
        nodes=[
            {
                "id": "human",
                "type": "handoff",
                "text": "A person will answer.",
                "reason": "asked for a person",
            }
        ],
    )
    flow_create(tenant=tenant, channel=twilio_channel, definition=doc)

    # when
    assert texts(receive(thread, "hi")) == ["A person will answer."]

    # then the thread needs a human and automation stays quiet
    thread.refresh_from_db()
    assert thread.needs_human is True
    assert thread.handoff_reason == "asked for a person"
    session = _session(thread)
    assert session.status == SessionStatus.COMPLETED
    assert session.handed_off is True
    assert receive(thread, "hello?") == []

    # when an agent resumes automation
    ChatThread.objects.filter(pk=thread.pk).update(needs_human=False)

    # then flows run again
    assert texts(receive(thread, "hi")) == ["A person will answer."]


def test_opt_out_works_while_a_human_has_the_thread(tenant, twilio_channel, thread):
    ChatThread.objects.filter(pk=thread.pk).update(needs_human=True)

    replies = receive(thread, "unsubscribe")

    assert len(replies) == 1
    thread.contact.refresh_from_db()
    assert thread.contact.is_opted_out


def test_node_guard_fails_the_session_quietly_and_logs_ids(tenant, twilio_channel, thread, caplog):
    nodes = [
        {"id": f"m{i}", "type": "message", "text": f"step {i}", "next": f"m{i + 1}"}
        for i in range(101)
    ]
    nodes.append({"id": "m101", "type": "end"})
    doc = flow_doc("long", trigger={"default": True}, start="m0", nodes=nodes)
    flow = flow_create(tenant=tenant, channel=twilio_channel, definition=doc)

    with caplog.at_level(logging.ERROR, logger="flows.services"):
        replies = receive(thread, "Maria here, +5511988887777")

    assert replies == []
    assert _session(thread).status == SessionStatus.FAILED
    failed = [r for r in caplog.records if r.getMessage() == "flow session failed"]
    assert len(failed) == 1
    assert failed[0].flow == str(flow.pk)
    assert failed[0].node_id
    logged = " ".join(str(v) for r in caplog.records for v in r.__dict__.values())
    assert "Maria" not in logged and "5511988887777" not in logged


def test_templates_see_contact_and_tenant(tenant, twilio_channel, thread):
    flow_create(tenant=tenant, channel=twilio_channel, definition=example("fitness-welcome"))

    replies = receive(thread, "hello")

    assert replies[0].text == f"Hi Maria! Welcome to {tenant.name}."
    assert replies[1].choices[0] == ("trial", "Book a free trial")


@pytest.mark.usefixtures("private_cache")
def test_fixed_query_count_while_a_flow_runs(
    tenant, twilio_channel, thread, django_assert_max_num_queries
):
    flow_create(tenant=tenant, channel=twilio_channel, definition=example("fitness-welcome"))
    receive(thread, "hello")
    receive(thread, "trial")  # now waiting at ask_day
    from conversations.models import Message

    locked = ChatThread.objects.select_related("contact", "tenant").get(pk=thread.pk)
    message = factories.MessageFactory(thread=locked, text="2030-01-15")
    from flows.services import flow_handle_inbound

    # waiting session + session update + one bulk insert of the step's FlowEvents;
    # candidates are cached, definition memoised
    with django_assert_max_num_queries(3):
        replies = flow_handle_inbound(thread=locked, message=message).replies
    assert texts(replies) == ["And your email, so we can send the confirmation?"]
    assert Message.objects.filter(thread=thread).exists()
