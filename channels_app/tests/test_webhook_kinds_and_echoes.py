"""Every message kind end to end (peer payloads through the signed webhook, stored with its
kind and encrypted content, shown by the API) and the WhatsApp Business app's echoes."""

import copy
import json

import pytest
import responses
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from conversations.models import ChatThread, Contact, Message
from flows.models import Flow, FlowSession, SessionStatus
from tests import factories
from tests.api_helpers import key_client

from .webhook_support import cloud_payload, post_cloud

pytestmark = pytest.mark.django_db


@pytest.fixture
def number_id(cloud_channel):
    return cloud_channel.settings["phone_number_id"]


def raw_private_data(message: Message) -> str:
    """The column as stored (the encrypted field's reading bypassed)."""
    key = message.pk.hex if connection.vendor == "sqlite" else message.pk
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_data FROM conversations_message WHERE id = %s", [key])
        return cursor.fetchone()[0]


def api_messages(tenant, thread):
    url = reverse("thread-messages", kwargs={"tenant": tenant.pk, "thread": thread.pk})
    response = key_client(tenant).get(url)
    assert response.status_code == 200
    return response.json()["results"]


@pytest.mark.parametrize(
    ("name", "kind", "text", "content_key", "secret"),
    [
        ("peer/courier_location", "location", "", "location", None),
        ("peer/chatwoot_contacts_message", "contacts", "", "contacts", "Diana Digital"),
        ("peer/courier_nfm_reply", "flow_reply", "Sent", "flow_reply", "Bob"),
        ("peer/chatwoot_referral_ctwa", "text", "Hello nielekeze", "referral", "ctwa_clid"),
    ],
)
def test_structured_kinds_are_stored_encrypted_and_shown_by_the_api(
    client, cloud_channel, number_id, no_flow, name, kind, text, content_key, secret
):
    # when
    assert post_cloud(client, cloud_payload(name, number_id)).status_code == 200

    # then: stored with its kind and content, the content encrypted at rest
    message = Message.objects.get()
    assert (message.kind, message.text) == (kind, text)
    assert content_key in message.private_data
    raw = raw_private_data(message)
    assert raw.startswith("gAAAA")  # a Fernet token
    if secret:
        assert secret not in raw
    # and the API shows kind and content (a location is never `"text": ""` without a kind)
    (row,) = api_messages(cloud_channel.tenant, message.thread)
    assert row["kind"] == kind
    assert row["content"] == message.private_data


def test_location_content_through_the_api(client, cloud_channel, number_id, no_flow):
    post_cloud(client, cloud_payload("peer/courier_location", number_id))
    (row,) = api_messages(cloud_channel.tenant, ChatThread.objects.get())
    assert row["content"] == {
        "location": {
            "latitude": 0.0,
            "longitude": 1.0,
            "name": "Main Street Beach",
            "address": "Main Street Beach, Santa Cruz, CA",
        }
    }


def test_flow_reply_content_through_the_api(client, cloud_channel, number_id, no_flow):
    post_cloud(client, cloud_payload("peer/courier_nfm_reply", number_id))
    (row,) = api_messages(cloud_channel.tenant, ChatThread.objects.get())
    assert row["content"] == {
        "flow_reply": {
            "name": "flow",
            "response": {"flow_token": "fl0w+t0k3n", "first_name": "Bob", "age": "32"},
        }
    }


def test_voice_note_is_an_audio_message_with_its_attachment(
    client, cloud_channel, number_id, no_flow, monkeypatch
):
    monkeypatch.setattr(
        "conversations.tasks.attachment_download", lambda *, attachment_id, final_attempt: "stored"
    )
    post_cloud(client, cloud_payload("peer/courier_voice", number_id))
    message = Message.objects.get()
    assert message.kind == "audio"
    assert message.metadata["provider_type"] == "voice"
    (attachment,) = message.attachments.all()
    assert (attachment.media_type, attachment.provider_media_id) == ("audio", "id_voice")


def test_reaction_is_stored_but_never_reaches_a_flow(client, cloud_channel, number_id):
    # given: a flow that greets anything
    from flows.services import flow_create

    from .test_webhook_identity import GREETING_FLOW

    flow_create(tenant=cloud_channel.tenant, channel=cloud_channel, definition=GREETING_FLOW)
    payload = cloud_payload("text", number_id)
    payload["entry"][0]["changes"][0]["value"]["messages"] = [
        {
            "from": "16505551234",
            "id": "wamid.REACTION",
            "timestamp": "1749416383",
            "type": "reaction",
            "reaction": {"message_id": "wamid.OURS", "emoji": "👍"},
        }
    ]

    # when
    assert post_cloud(client, payload).status_code == 200

    # then: stored and processed, nothing queued in reply
    message = Message.objects.get()
    assert message.kind == "reaction"
    assert message.private_data["reaction"]["emoji"] == "👍"
    assert message.processed_at is not None
    assert not Message.objects.filter(direction="outbound").exists()


# --- Business app echoes ----------------------------------------------------------------------


def test_echo_is_stored_once_as_sent_by_the_business_and_hands_the_thread_over(
    client, cloud_channel, number_id, no_flow
):
    # given: the contact in a conversation with a waiting flow session
    contact = factories.ContactFactory(
        tenant=cloud_channel.tenant, phone="+919745786257", external_id=""
    )
    thread = factories.ThreadFactory(channel=cloud_channel, contact=contact)
    flow = Flow.objects.create(
        tenant=cloud_channel.tenant,
        channel=cloud_channel,
        flow_id="intake",
        version=1,
        name="Intake",
        definition={},
    )
    session = FlowSession.objects.create(
        tenant=cloud_channel.tenant,
        thread=thread,
        flow=flow,
        status=SessionStatus.WAITING,
        current_node="ask",
    )
    payload = cloud_payload("peer/chatwoot_smb_message_echo", number_id)

    # when: delivered twice
    assert post_cloud(client, payload).status_code == 200
    assert post_cloud(client, copy.deepcopy(payload)).status_code == 200

    # then: one outbound message from the business, on the contact's thread
    echo = Message.objects.get()
    assert (echo.direction, echo.sender, echo.status) == ("outbound", "business", "sent")
    assert (echo.kind, echo.text) == ("text", "echo reply")
    assert echo.thread_id == thread.pk
    assert echo.metadata["echo"] is True
    assert echo.sent_at is not None
    # the user id in the echo is linked to the contact
    contact.refresh_from_db()
    assert contact.wa_user_id == "IN.2081978709342942"
    assert Contact.objects.count() == 1
    # a person answered from the app: automation pauses for a human
    thread.refresh_from_db()
    assert (thread.needs_human, thread.handoff_reason) == (True, "business_app")
    session.refresh_from_db()
    assert session.status == SessionStatus.INTERRUPTED
    assert no_flow == []  # an echo never runs a flow


def test_echo_to_a_new_contact_creates_it_without_running_anything(
    client, cloud_channel, number_id, no_flow
):
    assert post_cloud(client, cloud_payload("peer/chatwoot_smb_message_echo", number_id))
    contact = Contact.objects.get()
    assert (contact.phone, contact.wa_user_id) == ("+919745786257", "IN.2081978709342942")
    assert not Message.objects.filter(direction="inbound").exists()
    assert no_flow == []


# --- The flow engine on structured content ----------------------------------------------------

WHERE_FLOW = {
    "schema_version": 1,
    "flow_id": "where",
    "name": "Where",
    "language": "en",
    "trigger": {"default": True},
    "start": "ask",
    "nodes": [
        {
            "id": "ask",
            "type": "input",
            "text": "Share your location, please.",
            "save_as": "place",
            "validate": "location",
            "next": "form",
        },
        {
            "id": "form",
            "type": "input",
            "text": "Now fill in the form.",
            "save_as": "answers",
            "validate": "flow_reply",
            "next": "done",
        },
        {"id": "done", "type": "end", "text": "Thanks!"},
    ],
}


@responses.activate
def test_location_and_flow_reply_answer_input_nodes_through_the_webhook(
    client, cloud_channel, number_id
):
    # given: a flow asking for a location then a WhatsApp Flow form, and the Graph API recorded
    from flows.services import flow_create

    flow_create(tenant=cloud_channel.tenant, channel=cloud_channel, definition=WHERE_FLOW)
    posted = []

    def graph(request):
        posted.append(json.loads(request.body))
        return 200, {}, json.dumps({"messages": [{"id": f"wamid.OUT{len(posted)}"}]})

    responses.add_callback(
        responses.POST, f"https://graph.facebook.test/v22.0/{number_id}/messages", callback=graph
    )
    hello = cloud_payload("peer/courier_hello", number_id)
    location = cloud_payload("peer/courier_location", number_id)
    location["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.LOC"
    form = cloud_payload("peer/courier_nfm_reply", number_id)
    form["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.FORM"

    # when
    for payload in (hello, location, form):
        assert post_cloud(client, payload).status_code == 200

    # then: each answer was taken, the structured values saved
    assert [body["text"]["body"] for body in posted] == [
        "Share your location, please.",
        "Now fill in the form.",
        "Thanks!",
    ]
    assert all(body["to"] == "5678" for body in posted)
    session = FlowSession.objects.get()
    assert session.status == SessionStatus.COMPLETED
    assert session.variables["place"] == {
        "latitude": 0.0,
        "longitude": 1.0,
        "name": "Main Street Beach",
        "address": "Main Street Beach, Santa Cruz, CA",
    }
    assert session.variables["answers"] == {
        "flow_token": "fl0w+t0k3n",
        "first_name": "Bob",
        "age": "32",
    }


def test_an_echoed_photo_keeps_its_attachment(
    client, cloud_channel, number_id, no_flow, monkeypatch
):
    downloads = []
    monkeypatch.setattr(
        "conversations.tasks.attachment_download",
        lambda *, attachment_id, final_attempt: downloads.append(attachment_id) or "stored",
    )
    payload = cloud_payload("peer/chatwoot_smb_message_echo", number_id)
    echo = payload["entry"][0]["changes"][0]["value"]["message_echoes"][0]
    del echo["text"]
    echo.update(
        type="image", image={"id": "media-77", "mime_type": "image/jpeg", "caption": "Our menu"}
    )

    assert post_cloud(client, payload).status_code == 200

    message = Message.objects.get()
    assert (message.direction, message.kind, message.text) == ("outbound", "image", "Our menu")
    (attachment,) = message.attachments.all()
    assert (attachment.provider_media_id, attachment.content_type) == ("media-77", "image/jpeg")
    assert downloads == [str(attachment.pk)]


def test_an_echo_answers_a_wait_for_a_human(client, cloud_channel, number_id, no_flow):
    # given: a conversation a flow handed to a person (an open handoff, not answered yet)
    from conversations.models import Handoff, HandoffSource
    from conversations.services.handoffs import handoff_start

    contact = factories.ContactFactory(
        tenant=cloud_channel.tenant, phone="+919745786257", external_id=""
    )
    thread = factories.ThreadFactory(channel=cloud_channel, contact=contact, needs_human=True)
    handoff_start(thread=thread, source=HandoffSource.FLOW, now=timezone.now())

    # when: someone answers from the WhatsApp Business app
    payload = cloud_payload("peer/chatwoot_smb_message_echo", number_id)
    assert post_cloud(client, payload).status_code == 200

    # then: that was the first human reply; the wait is still the flow's
    handoff = Handoff.objects.get(thread=thread)
    assert handoff.first_reply_at is not None
    assert handoff.source == HandoffSource.FLOW and handoff.ended_at is None


def test_a_rate_limited_echo_is_never_sent_again(cloud_channel):
    """Review finding: a `failed` status with a retry code for a business-app echo put it
    back in the queue, and chatai sent the person's own text a second time."""
    from channels_app.providers import ParsedEcho, ParsedStatus
    from conversations.services.inbound import message_echo_record
    from conversations.services.outbound import message_status_update

    echo, created = message_echo_record(
        channel=cloud_channel,
        echo=ParsedEcho(
            provider_message_id="wamid.ECHO1", to_phone="+5511999990000", text="from the app"
        ),
    )
    assert created

    message_status_update(
        channel=cloud_channel,
        status=ParsedStatus(
            provider_message_id="wamid.ECHO1",
            status="failed",
            raw_status="failed",
            error_code="131056",
        ),
    )

    echo.refresh_from_db()
    assert echo.status != "queued"
    assert echo.sender == "business"


def test_a_closed_conversation_reopened_by_the_contact_while_a_person_has_it_waits(
    cloud_channel, django_capture_on_commit_callbacks
):
    """Review finding: an echo on a closed thread, then the contact's message reopening it,
    left it waiting for a human with no open wait (the queue had no oldest wait)."""
    from channels_app.providers import ParsedEcho, ParsedInbound
    from conversations.models import Handoff
    from conversations.services.inbound import message_echo_record, message_receive
    from conversations.services.stats import tenant_stats

    first, _ = message_receive(
        channel=cloud_channel,
        inbound=ParsedInbound(provider_message_id="wamid.IN1", from_phone="+5511999990000"),
    )
    ChatThread.objects.filter(pk=first.thread_id).update(status="closed")
    message_echo_record(
        channel=cloud_channel,
        echo=ParsedEcho(provider_message_id="wamid.E1", to_phone="+5511999990000", text="hi"),
    )

    with django_capture_on_commit_callbacks(execute=True):
        message_receive(
            channel=cloud_channel,
            inbound=ParsedInbound(
                provider_message_id="wamid.IN2", from_phone="+5511999990000", text="hello?"
            ),
        )

    thread = ChatThread.objects.get(pk=first.thread_id)
    assert (thread.status, thread.needs_human) == ("open", True)
    assert Handoff.objects.filter(thread=thread, ended_at__isnull=True).count() == 1
    assert tenant_stats(tenant=cloud_channel.tenant)["threads"]["oldest_waiting_since"]
