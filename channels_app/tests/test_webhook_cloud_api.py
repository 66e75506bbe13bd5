"""WhatsApp Cloud API webhooks replayed from stored payloads, signed with the app secret."""

import json

import pytest
from django.conf import settings

from conversations.models import Contact, Message, MessageAttachment
from core.crypto import provider_id_pseudonym

from .webhook_support import WEBHOOK, cloud_payload, hub_signature, post_cloud

pytestmark = pytest.mark.django_db


@pytest.fixture
def number_id(cloud_channel):
    return cloud_channel.settings["phone_number_id"]


def test_verification_handshake(client, db):
    params = {"hub.mode": "subscribe", "hub.verify_token": settings.META_VERIFY_TOKEN}
    response = client.get(WEBHOOK, params | {"hub.challenge": "1158201444"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
def test_verification_refused(client, db, params):
    assert client.get(WEBHOOK, params).status_code == 403


def test_text_message_is_stored_with_profile_name(client, cloud_channel, number_id, no_flow):
    payload = cloud_payload("text", number_id)
    response = post_cloud(client, payload)
    assert response.status_code == 200
    message = Message.objects.get()
    assert message.channel == cloud_channel
    assert (message.kind, message.text) == ("text", "Does it come in another color?")
    assert message.provider_message_id.startswith("wamid.")
    assert message.metadata["provider_timestamp"].startswith("2025-06-08")
    contact = Contact.objects.get()
    assert (contact.phone, contact.name) == ("+16505551234", "Sheena Nelson")
    assert no_flow == [message.pk]


def test_every_kind_is_stored_and_none_dropped(
    client, cloud_channel, number_id, no_flow, monkeypatch
):
    # given: one delivery with every message type, downloads recorded instead of run
    monkeypatch.setattr(
        "conversations.tasks.attachment_download",
        lambda *, attachment_id, final_attempt: "stored",
    )
    payload = cloud_payload("kinds", number_id)

    # when
    response = post_cloud(client, payload)

    # then
    assert response.status_code == 200
    # ids are stored pseudonymised (a wamid holds the phone number): map them back
    sent_ids = [m["id"] for m in payload["entry"][0]["changes"][0]["value"]["messages"]]
    unmask = {provider_id_pseudonym(raw): raw for raw in sent_ids}
    assert not set(unmask) & set(sent_ids)
    by_id = {unmask[m.provider_message_id]: m for m in Message.objects.all()}
    assert len(by_id) == len(payload["entry"][0]["changes"][0]["value"]["messages"])
    kinds = {pid: (m.kind, m.metadata.get("interactive_id")) for pid, m in by_id.items()}
    assert kinds == {
        "wamid.IMAGE0001": ("image", None),
        "wamid.AUDIO0001": ("audio", None),
        "wamid.VIDEO0001": ("video", None),
        "wamid.DOC00001": ("document", None),
        "wamid.STICKER01": ("sticker", None),
        "wamid.LOCATION1": ("location", None),
        "wamid.BUTTONREPLY": ("interactive", "trial"),
        "wamid.LISTREPLY01": ("interactive", "prices"),
        "wamid.TEMPLATEBTN": ("button", "STOP_PROMOS"),
        "wamid.REACTION01": ("reaction", None),
        "wamid.UNSUPPORTED": ("unsupported", None),
    }
    assert by_id["wamid.REACTION01"].metadata["provider_type"] == "reaction"
    assert by_id["wamid.IMAGE0001"].text == "Here is my card"
    assert by_id["wamid.LOCATION1"].private_data["location"]["latitude"] == 37.483307
    attachments = {
        unmask[a.message.provider_message_id]: a for a in MessageAttachment.objects.all()
    }
    assert set(attachments) == {
        "wamid.IMAGE0001",
        "wamid.AUDIO0001",
        "wamid.VIDEO0001",
        "wamid.DOC00001",
        "wamid.STICKER01",
    }
    document = attachments["wamid.DOC00001"]
    assert (document.provider_media_id, document.content_type) == (
        "1003383421387259",
        "application/pdf",
    )
    assert document.metadata["filename"] == "form.pdf"
    # processing saw them in the order they were sent
    ordered = [by_id[m["id"]].pk for m in payload["entry"][0]["changes"][0]["value"]["messages"]]
    assert no_flow == ordered


def test_duplicate_batch_is_stored_once(client, cloud_channel, number_id, no_flow):
    payload = cloud_payload("text", number_id)
    for _ in range(3):
        assert post_cloud(client, payload).status_code == 200
    assert Message.objects.count() == 1
    assert len(no_flow) == 1


def test_unknown_number_is_acknowledged_and_skipped(client, cloud_channel, number_id, no_flow):
    # given: a batch with one change for us and one for a number we do not serve
    payload = cloud_payload("text", number_id)
    other = json.loads(json.dumps(payload["entry"][0]))
    other["changes"][0]["value"]["metadata"]["phone_number_id"] = "999999999"
    other["changes"][0]["value"]["messages"][0]["id"] = "wamid.FOR_SOMEONE_ELSE"
    payload["entry"].append(other)

    # when
    response = post_cloud(client, payload)

    # then
    assert response.status_code == 200
    assert list(Message.objects.values_list("provider_message_id", flat=True)) == [
        provider_id_pseudonym(payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"])
    ]


@pytest.mark.parametrize("signature", ["", "sha256=" + "0" * 64, "md5=abc", None])
def test_bad_signature_is_403_and_stores_nothing(client, cloud_channel, number_id, signature):
    payload = cloud_payload("text", number_id)
    if signature is None:  # signed with another secret
        signature = hub_signature(json.dumps(payload).encode(), "not-the-app-secret")
    response = post_cloud(client, payload, signature=signature)
    assert response.status_code == 403
    assert not Message.objects.exists()
    assert not Contact.objects.exists()


def test_signature_is_over_the_raw_body(client, cloud_channel, number_id):
    payload = cloud_payload("text", number_id)
    body = json.dumps(payload).encode()
    signature = hub_signature(body)
    tampered = body.replace(b"another color", b"another price")
    response = post_cloud(client, None, raw=tampered, signature=signature)
    assert response.status_code == 403
    assert not Message.objects.exists()


def test_channel_app_secret_is_accepted(client, tenant, no_flow):
    from tests import factories

    channel = factories.CloudChannelFactory(
        tenant=tenant, secrets={"access_token": "EAAG", "app_secret": "tenant-app-secret"}
    )
    payload = cloud_payload("text", channel.settings["phone_number_id"])
    body = json.dumps(payload).encode()
    response = post_cloud(
        client, None, raw=body, signature=hub_signature(body, "tenant-app-secret")
    )
    assert response.status_code == 200
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[]", b'{"object": "whatsapp_business_account"}', b'"text"', b"\xff\xfe"],
    ids=["broken", "list", "no-entry", "string", "not-utf8"],
)
def test_unparseable_body_is_400_and_stores_nothing(client, cloud_channel, raw):
    response = post_cloud(client, None, raw=raw)
    assert response.status_code == 400
    assert not Message.objects.exists()


def test_malformed_parts_are_skipped_not_refused(client, cloud_channel, number_id, no_flow):
    payload = cloud_payload("text", number_id)
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"].insert(0, {"type": "text", "text": {"body": "no id, no sender"}})
    value["statuses"] = [{"status": "read"}, "nonsense"]
    payload["entry"].append({"id": "x", "changes": "not a list"})
    payload["entry"].append({"id": "y", "changes": [{"field": "account_update", "value": {}}]})
    response = post_cloud(client, payload)
    assert response.status_code == 200
    assert Message.objects.count() == 1


def test_a_tenant_secret_signs_for_its_own_channels_only(client, tenant, other_tenant, no_flow):
    # given: tenant A has its own Meta app secret; tenant B's channel uses the platform's
    from tests import factories

    own = factories.CloudChannelFactory(
        tenant=tenant, secrets={"access_token": "EAAG", "app_secret": "tenant-a-secret"}
    )
    victim = factories.CloudChannelFactory(tenant=other_tenant)
    payload = cloud_payload("text", own.settings["phone_number_id"])
    forged = cloud_payload("text", victim.settings["phone_number_id"])
    forged["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.FORGED"
    payload["entry"].extend(forged["entry"])
    body = json.dumps(payload).encode()

    # when: A signs a body that also carries a delivery for B's number
    response = post_cloud(client, None, raw=body, signature=hub_signature(body, "tenant-a-secret"))

    # then: A's own delivery is stored, B's is not
    assert response.status_code == 200
    assert list(Message.objects.values_list("channel_id", flat=True)) == [own.pk]


@pytest.mark.parametrize("raw", [b"[" * 200_000, b"[" * 900 + b"]" * 900])
def test_deeply_nested_bodies_are_refused_not_500(client, cloud_channel, raw):
    unsigned = post_cloud(client, None, raw=raw, signature="sha256=00")
    signed = post_cloud(client, None, raw=raw)
    assert unsigned.status_code == 403
    assert signed.status_code == 400
    assert not Message.objects.exists()


def test_an_unsigned_body_cannot_make_us_look_up_many_channels(
    client, cloud_channel, django_assert_max_num_queries
):
    # given: a body naming thousands of phone number ids, with a signature nobody made
    changes = [
        {"field": "messages", "value": {"metadata": {"phone_number_id": str(n)}}}
        for n in range(5000)
    ]
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": changes}]})

    # when / then: refused before any channel is looked up
    with django_assert_max_num_queries(2):
        response = post_cloud(client, None, raw=body.encode(), signature="sha256=00")
    assert response.status_code == 403


def test_a_deleted_tenants_number_is_an_unknown_number(client, cloud_channel, number_id, no_flow):
    cloud_channel.tenant.soft_delete()
    response = post_cloud(client, cloud_payload("text", number_id))
    assert response.status_code == 200
    assert not Message.objects.exists()


def test_whatsapp_ids_are_not_stored_in_clear(client, cloud_channel, number_id, no_flow):
    # given: a Cloud API id, which is base64 holding the sender's phone number
    payload = cloud_payload("text", number_id)
    raw_id = payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]

    # when: stored, then a status callback and a redelivery quote it
    assert post_cloud(client, payload).status_code == 200
    assert post_cloud(client, payload).status_code == 200

    # then: the column holds a pseudonym, and the id still finds its message once
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT provider_message_id FROM conversations_message")
        stored = [row[0] for row in cursor.fetchall()]
    assert stored == [provider_id_pseudonym(raw_id)] and raw_id not in stored
    assert Message.objects.get(provider_message_id=raw_id).channel_id == cloud_channel.pk
