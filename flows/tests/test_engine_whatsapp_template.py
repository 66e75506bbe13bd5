"""A message node's `whatsapp_template`: the engine sends it when the window is closed (or
always), decided from the `window_open` fact it is given; and the pipeline gives it that fact,
sending a real template message when a timeout fires after the window closed."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import responses
from django.utils import timezone

from channels_app.tests.webhook_support import load, run_on_commit
from conversations.models import Message
from conversations.services.process import flow_fire_due_timeouts
from flows.engine import RunContext, TemplateSend, parse_flow, start_session, validate_flow
from flows.models import FlowSession
from flows.services import flow_create
from flows.tests.support import example, receive
from tests import factories

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def flow(**node_extra):
    return {
        "schema_version": 1,
        "flow_id": "nudge",
        "name": "Nudge",
        "start": "nudge",
        "nodes": [
            {
                "id": "nudge",
                "type": "message",
                "text": "Still there, {{ contact.name }}?",
                "whatsapp_template": {
                    "name": "follow_up",
                    "language": "en",
                    "parameters": ["{{ contact.name | default: 'friend' }}"],
                },
                **node_extra,
            }
        ],
    }


def run(doc, *, window_open):
    ctx = RunContext(now=NOW, contact_name="Maria", window_open=window_open)
    return start_session(parse_flow(doc), ctx, None).outbound


@pytest.mark.parametrize(
    ("mode", "window_open", "sends_template"),
    [
        ({}, True, False),  # default: window_closed
        ({}, False, True),
        ({"send_template": "window_closed"}, True, False),
        ({"send_template": "window_closed"}, False, True),
        ({"send_template": "always"}, True, True),
        ({"send_template": "always"}, False, True),
    ],
)
def test_the_template_goes_when_the_flow_says_so(mode, window_open, sends_template):
    (out,) = run(flow(**mode), window_open=window_open)
    if sends_template:
        assert out.template == TemplateSend(name="follow_up", language="en", parameters=("Maria",))
    else:
        assert out.template is None and out.text == "Still there, Maria?"


def test_a_twilio_template_is_named_by_its_content_sid():
    doc = flow(send_template="always")
    doc["nodes"][0]["whatsapp_template"] = {
        "content_sid": "HX2d2ddbbe8bca9ba2a3e2bcd91ca3c16b",
        "parameters": ["{{ contact.name }}", "3 pm"],
    }
    (out,) = run(doc, window_open=True)
    assert out.template == TemplateSend(
        content_sid="HX2d2ddbbe8bca9ba2a3e2bcd91ca3c16b", parameters=("Maria", "3 pm")
    )


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            {"send_template": "always", "whatsapp_template": None},
            "nodes[0]",
            "needs a whatsapp_template",
        ),
        ({"send_template": "sometimes"}, "nodes[0].send_template", ""),
        ({"whatsapp_template": {"name": "x"}}, "nodes[0].whatsapp_template", "name and language"),
        (
            {"whatsapp_template": {"name": "x", "language": "en", "content_sid": "HX" + "0" * 32}},
            "nodes[0].whatsapp_template",
            "not both",
        ),
        (
            {"whatsapp_template": {"content_sid": "SM123"}},
            "nodes[0].whatsapp_template.content_sid",
            "",
        ),
        (
            {"whatsapp_template": {"name": "x", "language": "en", "parameters": ["{{ nope }}"]}},
            "nodes[0].whatsapp_template.parameters[0]",
            "",
        ),
    ],
)
def test_a_bad_template_node_is_refused_with_its_path(change, path, message):
    doc = flow()
    node = doc["nodes"][0]
    for key, value in change.items():
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    issues = validate_flow(doc)
    assert any(issue.path == path and message in issue.message for issue in issues), issues


def test_the_example_validates():
    assert validate_flow(example("class-follow-up")) == []


# -- through the pipeline ------------------------------------------------------------------


@pytest.fixture
def cloud_thread(tenant):
    channel = factories.CloudChannelFactory(tenant=tenant)
    factories.ChannelTemplateFactory(
        channel=channel,
        name="follow_up",
        language="en",
        body="Hi {{1}}, we have an answer to your question.",
        components=[{"type": "BODY", "text": "Hi {{1}}, we have an answer to your question."}],
    )
    contact = factories.ContactFactory(tenant=tenant, name="Maria", phone="+16505551234")
    return factories.ThreadFactory(channel=channel, contact=contact)


def start(thread, *, timeout_seconds=86400):
    """The example flow on the thread's channel (its question's timeout changed when asked),
    started by the contact's "classes"."""
    doc = example("class-follow-up")
    doc["nodes"][0]["timeout"]["seconds"] = timeout_seconds
    flow_create(tenant=thread.tenant, channel=thread.channel, definition=doc)
    receive(thread, "classes")
    return FlowSession.objects.get(thread=thread)


def graph_url(thread):
    return (
        f"https://graph.facebook.test/v22.0/{thread.channel.settings['phone_number_id']}/messages"
    )


@pytest.mark.django_db
@responses.activate
def test_a_timeout_after_the_window_closed_sends_the_template(cloud_thread):
    # given: the contact asked about classes and went quiet for a day
    responses.post(graph_url(cloud_thread), json=load("cloud_api/messages_sent_200.json"))
    due = start(cloud_thread).wait_expires_at
    Message.objects.filter(thread=cloud_thread, direction="outbound").update(status="sent")
    Message.objects.filter(thread=cloud_thread, direction="inbound").update(
        created_at=timezone.now() - timedelta(days=1, minutes=1)
    )
    type(cloud_thread).objects.filter(pk=cloud_thread.pk).update(
        last_inbound_at=timezone.now() - timedelta(days=1, minutes=1)
    )

    # when: the question's timeout fires
    with run_on_commit():
        assert flow_fire_due_timeouts(now=max(due, timezone.now())) == 1

    # then: the template went out, with the contact's name as its parameter
    (call,) = responses.calls
    assert json.loads(call.request.body)["template"] == {
        "name": "follow_up",
        "language": {"code": "en"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Maria"}]}],
    }
    sent = Message.objects.get(thread=cloud_thread, kind="template")
    assert (sent.status, sent.sender) == ("sent", "flow")
    assert sent.text == "Hi Maria, we have an answer to your question."


@pytest.mark.django_db
def test_within_the_window_the_node_sends_its_text(cloud_thread):
    session = start(cloud_thread, timeout_seconds=3600)

    flow_fire_due_timeouts(now=session.wait_expires_at)  # the contact wrote moments ago

    nudge = Message.objects.filter(thread=cloud_thread, direction="outbound").latest("created_at")
    assert nudge.kind == "text" and nudge.text.startswith("Still thinking about a class?")


@pytest.mark.django_db
def test_a_template_the_channel_lacks_is_recorded_as_failed_with_the_reason(cloud_thread):
    cloud_thread.channel.templates.update(status="paused")
    start(cloud_thread)
    type(cloud_thread).objects.filter(pk=cloud_thread.pk).update(
        last_inbound_at=timezone.now() - timedelta(days=2)
    )
    Message.objects.filter(thread=cloud_thread, direction="inbound").update(
        created_at=timezone.now() - timedelta(days=2)
    )
    session = FlowSession.objects.get(thread=cloud_thread)

    flow_fire_due_timeouts(now=max(session.wait_expires_at, timezone.now()))

    failed = Message.objects.get(thread=cloud_thread, kind="template")
    assert (failed.status, failed.error_code) == ("failed", "template_unavailable")
    assert "not approved (paused)" in failed.error_detail


@pytest.mark.django_db
def test_an_unavailable_template_fires_its_failed_status_and_is_not_counted_queued(
    cloud_thread, monkeypatch
):
    # given: a subscriber to message.status, and the template no longer approved
    from core import metrics
    from integrations.models import WebhookDelivery

    factories.WebhookEndpointFactory(tenant=cloud_thread.tenant, events=["message.status"])
    cloud_thread.channel.templates.update(status="paused")
    start(cloud_thread)
    type(cloud_thread).objects.filter(pk=cloud_thread.pk).update(
        last_inbound_at=timezone.now() - timedelta(days=2)
    )
    Message.objects.filter(thread=cloud_thread, direction="inbound").update(
        created_at=timezone.now() - timedelta(days=2)
    )
    session = FlowSession.objects.get(thread=cloud_thread)
    queued = []
    monkeypatch.setattr(metrics, "message_queued", lambda count=1: queued.append(count))

    # when
    with run_on_commit():
        flow_fire_due_timeouts(now=max(session.wait_expires_at, timezone.now()))

    # then: the failed message's status event, and nothing counted as queued for it
    failed = Message.objects.get(thread=cloud_thread, kind="template")
    (delivery,) = WebhookDelivery.objects.filter(event="message.status")
    assert delivery.payload["message"] == {
        "id": str(failed.pk),
        "direction": "outbound",
        "status": "failed",
        "error_code": "template_unavailable",
        "sent_at": None,
        "delivered_at": None,
        "read_at": None,
    }
    assert sum(queued) == 0


def test_the_simulator_prints_a_template_as_its_text():
    from channels_app.providers.base import OutboundPayload, TemplateMessage
    from conversations.management.commands.simulate_chat import PrintingProvider

    printed: list[str] = []
    payload = OutboundPayload(
        to_phone="+16505551234",
        text="Hi Maria, we have an answer to your question.",
        template=TemplateMessage(name="follow_up", language="en"),
    )
    PrintingProvider(printed.append).deliver(channel=None, payload=payload)
    assert printed == ["[template follow_up] Hi Maria, we have an answer to your question."]


@pytest.mark.django_db
@responses.activate
def test_always_sends_the_template_from_the_inbound_pipeline(tenant):
    from channels_app.providers import ParsedInbound
    from conversations.services.inbound import message_receive

    # given: a flow whose first node always sends a template, on a Cloud API channel
    channel = factories.CloudChannelFactory(tenant=tenant)
    factories.ChannelTemplateFactory(
        channel=channel,
        name="follow_up",
        language="en",
        body="Hi {{1}}, we have an answer to your question.",
        components=[{"type": "BODY", "text": "Hi {{1}}, we have an answer to your question."}],
    )
    doc = flow(send_template="always")
    doc["trigger"] = {"default": True}
    flow_create(tenant=tenant, channel=channel, definition=doc)
    responses.post(
        f"https://graph.facebook.test/v22.0/{channel.settings['phone_number_id']}/messages",
        json=load("cloud_api/messages_sent_200.json"),
    )

    # when: the contact writes (webhook -> store -> process -> send, after each commit)
    with run_on_commit():
        message_receive(
            channel=channel,
            inbound=ParsedInbound(
                provider_message_id="wamid.in1",
                from_phone="+16505551234",
                text="hello",
                profile_name="Maria",
            ),
        )

    # then: the template went out (the window is open, but the node says always)
    (call,) = responses.calls
    body = json.loads(call.request.body)
    assert body["type"] == "template" and body["template"]["name"] == "follow_up"
    assert body["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Maria"}]
    sent = Message.objects.get(kind="template")
    assert (sent.status, sent.text) == ("sent", "Hi Maria, we have an answer to your question.")
