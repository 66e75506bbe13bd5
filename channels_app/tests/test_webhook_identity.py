"""Senders without a phone number, group messages and Twilio posts that are not WhatsApp,
end to end: peer payloads through the signed webhook, what is stored, and where the flow's
reply goes."""

import copy
import itertools
import json
import logging
from urllib.parse import parse_qs

import pytest
import responses
from prometheus_client import REGISTRY

from conversations.models import ChatThread, Contact, Message
from core.crypto import phone_lookup, wa_user_lookup
from flows.services import flow_create
from tests import factories

from .webhook_support import cloud_payload, post_cloud, post_twilio, twilio_params

pytestmark = pytest.mark.django_db

GREETING_FLOW = {
    "schema_version": 1,
    "flow_id": "greet",
    "name": "Greeting",
    "language": "en",
    "trigger": {"default": True},
    "start": "hello",
    "nodes": [{"id": "hello", "type": "message", "text": "Hello {{ contact.name }}!"}],
}
SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"


def skipped(provider, reason):
    labels = {"provider": provider, "reason": reason}
    return REGISTRY.get_sample_value("chatai_inbound_skipped_total", labels) or 0.0


@pytest.fixture
def number_id(cloud_channel):
    return cloud_channel.settings["phone_number_id"]


@pytest.fixture
def graph(number_id):
    """The Graph API's messages endpoint, recorded."""
    posted = []
    wamids = (f"wamid.OUT{n:04d}" for n in itertools.count(1))

    def answer(request):
        posted.append(json.loads(request.body))
        body = {"messaging_product": "whatsapp", "messages": [{"id": next(wamids)}]}
        return 200, {}, json.dumps(body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(
            responses.POST,
            f"https://graph.facebook.test/v22.0/{number_id}/messages",
            callback=answer,
        )
        yield posted


def with_message(name, number_id, **changes):
    """A stored payload with its first message's fields changed (None removes a field; a
    removed `from` or `from_user_id` is removed from `contacts` too)."""
    payload = cloud_payload(name, number_id)
    value = payload["entry"][0]["changes"][0]["value"]
    message = value["messages"][0]
    for key, new in changes.items():
        if new is None:
            message.pop(key, None)
            contact_key = {"from": "wa_id", "from_user_id": "user_id"}.get(key)
            for contact in value.get("contacts", []):
                contact.pop(contact_key, None)
        else:
            message[key] = new
    return payload


# --- Cloud API: identity ------------------------------------------------------------------


def test_user_id_only_sender_is_stored_and_answered_by_recipient(
    client, cloud_channel, number_id, graph
):
    # given: a greeting flow on the channel
    flow_create(tenant=cloud_channel.tenant, channel=cloud_channel, definition=GREETING_FLOW)
    payload = cloud_payload("peer/courier_hello_from_bsuid", number_id)

    # when: delivered twice
    first = post_cloud(client, payload)
    second = post_cloud(client, copy.deepcopy(payload))

    # then: one message, on a contact with no phone, and one reply addressed by user id
    assert (first.status_code, second.status_code) == (200, 200)
    message = Message.objects.get(direction="inbound")
    assert message.text == "Hello World"
    contact = Contact.objects.get()
    assert (contact.phone, contact.phone_lookup) == ("", None)
    assert contact.wa_user_id == "US.1234"
    assert contact.wa_user_lookup == wa_user_lookup("US.1234")
    assert contact.name == "Kerry Fisher"
    assert graph == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "recipient": "US.1234",
            "type": "text",
            "text": {"preview_url": False, "body": "Hello Kerry Fisher!"},
        }
    ]
    assert Message.objects.get(direction="outbound").status == "sent"


def test_user_id_in_from_is_not_stored_as_a_phone(client, cloud_channel, number_id, no_flow):
    assert post_cloud(client, cloud_payload("peer/courier_hello_bsuid_in_from", number_id))
    contact = Contact.objects.get()
    assert (contact.phone, contact.wa_user_id) == ("", "US.1234")
    # the digits of the user id are no one's phone
    assert not Contact.objects.filter(phone_lookup=phone_lookup("+1234")).exists()


def test_phone_and_user_id_make_one_contact_whatever_arrives_later(
    client, cloud_channel, number_id, no_flow
):
    # given: a message carrying both ids
    payload = cloud_payload("peer/chatwoot_phone_and_bsuid", number_id)
    assert post_cloud(client, payload).status_code == 200

    # when: the same person writes with the user id only, then with the phone only
    user_only = with_message(
        "peer/chatwoot_phone_and_bsuid", number_id, id="wamid.user-only", **{"from": None}
    )
    phone_only = with_message(
        "peer/chatwoot_phone_and_bsuid", number_id, id="wamid.phone-only", from_user_id=None
    )
    assert post_cloud(client, user_only).status_code == 200
    assert post_cloud(client, phone_only).status_code == 200

    # then: one contact, one thread, three messages
    contact = Contact.objects.get()
    assert (contact.phone, contact.wa_user_id) == ("+919745786257", "IN.2081978709342942")
    thread = ChatThread.objects.get()
    assert thread.messages.count() == 3
    assert len(no_flow) == 3


def test_a_phone_contact_gets_the_user_id_when_both_arrive(
    client, cloud_channel, number_id, no_flow
):
    # given: the contact known by phone only
    phone_only = with_message(
        "peer/chatwoot_phone_and_bsuid", number_id, id="wamid.first", from_user_id=None
    )
    post_cloud(client, phone_only)
    before = Contact.objects.get()
    assert before.wa_user_id == ""

    # when
    post_cloud(client, cloud_payload("peer/chatwoot_phone_and_bsuid", number_id))

    # then: linked, not duplicated
    contact = Contact.objects.get()
    assert contact.pk == before.pk
    assert contact.wa_user_id == "IN.2081978709342942"
    assert ChatThread.objects.get().messages.count() == 2


def test_a_user_id_contact_gets_the_phone_when_both_arrive(
    client, cloud_channel, number_id, no_flow
):
    post_cloud(client, cloud_payload("peer/chatwoot_bsuid_only", number_id))
    before = Contact.objects.get()
    assert before.phone == ""

    post_cloud(client, cloud_payload("peer/chatwoot_phone_and_bsuid", number_id))

    contact = Contact.objects.get()
    assert contact.pk == before.pk
    assert contact.phone == "+919745786257"
    assert contact.phone_lookup == phone_lookup("+919745786257")


def test_two_contacts_of_one_person_are_merged(client, cloud_channel, number_id, no_flow):
    # given: one contact known by phone, another by user id, each with a thread
    phone_only = with_message(
        "peer/chatwoot_phone_and_bsuid", number_id, id="wamid.by-phone", from_user_id=None
    )
    user_only = with_message(
        "peer/chatwoot_phone_and_bsuid", number_id, id="wamid.by-user", **{"from": None}
    )
    post_cloud(client, phone_only)
    post_cloud(client, user_only)
    assert Contact.objects.count() == 2
    by_phone = Contact.objects.get(phone_lookup=phone_lookup("+919745786257"))

    # when: a message carries both
    post_cloud(client, cloud_payload("peer/chatwoot_phone_and_bsuid", number_id))

    # then: one live contact (the older, phone one) with both ids, one thread with all three
    contact = Contact.objects.get()
    assert contact.pk == by_phone.pk
    assert (contact.phone, contact.wa_user_id) == ("+919745786257", "IN.2081978709342942")
    thread = ChatThread.objects.get()
    assert thread.contact_id == contact.pk
    assert thread.messages.count() == 3
    merged = Contact.all_objects.exclude(pk=contact.pk).get()
    assert merged.deleted_at is not None
    assert (merged.phone, merged.wa_user_id, merged.wa_user_lookup) == ("", "", None)


def test_message_without_any_sender_is_skipped_counted_and_answered_200(
    client, cloud_channel, number_id, no_flow
):
    before = skipped("cloud_api", "no_sender")
    response = post_cloud(client, cloud_payload("peer/courier_no_from", number_id))
    assert response.status_code == 200
    assert not Message.objects.exists()
    assert not Contact.objects.exists()
    assert skipped("cloud_api", "no_sender") == before + 1


# --- Groups -----------------------------------------------------------------------------------


def test_group_message_is_skipped_with_a_log_line_and_a_metric(
    client, cloud_channel, number_id, graph, caplog
):
    flow_create(tenant=cloud_channel.tenant, channel=cloud_channel, definition=GREETING_FLOW)
    before = skipped("cloud_api", "group")

    with caplog.at_level(logging.INFO):
        response = post_cloud(client, cloud_payload("peer/courier_group_message", number_id))

    assert response.status_code == 200
    assert not Message.objects.exists()
    assert not Contact.objects.exists()
    assert graph == []  # no private reply to the member
    assert skipped("cloud_api", "group") == before + 1
    (line,) = [r for r in caplog.records if r.getMessage() == "group message skipped"]
    logged = json.dumps(line.__dict__, default=str)
    assert "Hello World" not in logged and "Kerry" not in logged  # no text, no name
    assert "555555555" not in json.dumps(line.__dict__, default=str)  # nor the group id


# --- Twilio -----------------------------------------------------------------------------------


@responses.activate
def test_twilio_user_id_sender_is_answered_at_its_user_id(client, wa_twilio_channel):
    # given
    flow_create(
        tenant=wa_twilio_channel.tenant, channel=wa_twilio_channel, definition=GREETING_FLOW
    )
    posts = []

    def twilio_api(request):
        posts.append({k: v[0] for k, v in parse_qs(request.body).items()})
        return 201, {}, json.dumps({"sid": "SM" + "1" * 32, "status": "queued"})

    responses.add_callback(responses.POST, TWILIO_URL, callback=twilio_api)

    # when
    params = twilio_params("peer/courier_waReceiveFromBSUID")
    assert post_twilio(client, params, token="chan-token").status_code == 200

    # then
    contact = Contact.objects.get()
    assert (contact.phone, contact.wa_user_id) == ("", "US.1234")
    assert [post["To"] for post in posts] == ["whatsapp:US.1234"]


def test_twilio_phone_with_user_id_links_both(client, wa_twilio_channel, no_flow):
    params = twilio_params("peer/courier_waReceiveBSUIDValid")
    assert post_twilio(client, params, token="chan-token").status_code == 200
    contact = Contact.objects.get()
    assert (contact.phone, contact.wa_user_id) == ("+14133881111", "US.1234")


@pytest.mark.parametrize(
    "name", ["peer/courier_waReceivePrefixlessURN", "peer/courier_receiveValid"]
)
def test_twilio_post_that_is_not_whatsapp_is_refused_clearly(
    client, wa_twilio_channel, no_flow, name, caplog
):
    before = skipped("twilio", "not_whatsapp")
    params = twilio_params(name)

    with caplog.at_level(logging.WARNING):
        response = post_twilio(client, params, token="chan-token")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_whatsapp"
    assert not Message.objects.exists()
    assert not Contact.objects.exists()
    assert skipped("twilio", "not_whatsapp") == before + 1
    assert any(r.getMessage() == "twilio post that is not WhatsApp refused" for r in caplog.records)


def test_twilio_post_with_a_made_up_sender_is_a_bad_request(client, wa_twilio_channel, no_flow):
    params = twilio_params("inbound_text", From="whatsapp:not-a-number")
    response = post_twilio(client, params, token="chan-token")
    assert response.status_code == 400
    assert not Message.objects.exists()


def test_reply_to_a_contact_without_phone_or_user_id_fails_clearly(cloud_channel):
    # an erased-like contact with neither id: nothing is sent, the reason is recorded
    from conversations.services.outbound import message_deliver

    contact = factories.ContactFactory(
        tenant=cloud_channel.tenant, phone="", phone_lookup=None, external_id=""
    )
    thread = factories.ThreadFactory(channel=cloud_channel, contact=contact)
    message = factories.MessageFactory(
        thread=thread, direction="outbound", status="queued", sender="flow", text="hi"
    )
    assert message_deliver(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert message.error_code == "no_recipient"


def test_a_changed_user_id_moves_to_the_new_one_once(client, cloud_channel, number_id, no_flow):
    # given: a contact known by the previous user id
    from conversations.services.contacts import contact_get_or_create

    contact, _ = contact_get_or_create(tenant=cloud_channel.tenant, user_id="IN.PREVIOUSBSUID")
    payload = cloud_payload("peer/chatwoot_system_user_changed_user_id", number_id)

    # when: delivered twice
    assert post_cloud(client, payload).status_code == 200
    assert post_cloud(client, copy.deepcopy(payload)).status_code == 200

    # then: the same contact, now with the new id; no message stored
    contact.refresh_from_db()
    assert contact.wa_user_id == "IN.CURRENTBSUID"
    assert contact.wa_user_lookup == wa_user_lookup("IN.CURRENTBSUID")
    assert Contact.objects.count() == 1
    assert not Message.objects.exists()
