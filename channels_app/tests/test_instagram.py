"""Instagram DM end to end: the channel, signed webhooks replayed from payloads built from
Meta's Instagram API with Instagram Login documentation (`fixtures/instagram/`), contacts
known by their Instagram-scoped id, a flow turn whose replies reach the stand-in Graph URL,
refusals, read receipts, edits, unsends, echoes, GDPR and tenant isolation."""

import copy
import itertools
import json
from io import StringIO

import pytest
import responses
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from channels_app.models import ChannelInstance
from channels_app.services import channel_create, channel_update
from conversations.models import ChatThread, Contact, Message, MessageAttachment
from conversations.services.outbound import message_deliver, replies_store
from conversations.services.privacy import contact_find
from core.crypto import ig_user_lookup, phone_lookup
from flows.services import Reply
from tests import factories
from tests.api_helpers import key_client

from .test_webhook_conversation import fitness
from .webhook_support import hub_signature, load, run_on_commit

pytestmark = pytest.mark.django_db

ACCOUNT = "17841400000000001"
IGSID = "1234567890123456"
WEBHOOK = "/api/webhooks/instagram"
GRAPH = f"https://graph.instagram.test/v22.0/{ACCOUNT}/messages"
TOKEN = "IGAA-test-token"


def instagram_channel(tenant, account=ACCOUNT, **secrets):
    return channel_create(
        tenant=tenant,
        provider="instagram",
        settings={"instagram_account_id": account},
        secrets={"access_token": TOKEN, **secrets},
    )


def payload(name, **message):
    body = copy.deepcopy(load(f"instagram/{name}.json"))
    if message:
        body["entry"][0]["messaging"][0]["message"].update(message)
    return body


def post(client, body, *, secret=None, signature=None, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    sig = hub_signature(data, secret) if signature is None else signature
    headers = {"HTTP_X_HUB_SIGNATURE_256": sig} if sig else {}
    with run_on_commit():
        return client.post(WEBHOOK, data=data, content_type="application/json", **headers)


class Graph:
    """The stand-in Graph API: answers each POST with a fresh message id, keeps what came."""

    def __init__(self):
        self.ids = (f"igout.{n:04d}" for n in itertools.count(1))
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        return 200, {}, json.dumps({"recipient_id": IGSID, "message_id": next(self.ids)})

    @property
    def bodies(self):
        return [json.loads(request.body) for request in self.requests]


# -- the channel ---------------------------------------------------------------------------------


def test_an_instagram_channel_has_no_phone_and_is_named_by_its_account(tenant):
    channel = instagram_channel(tenant)
    assert channel.channel_type == "instagram"
    assert channel.identifier == f"instagram:{ACCOUNT}"
    assert channel.phone_number == ""
    assert str(channel).endswith("Instagram 17841…0001 (Instagram)")
    # deactivating and reactivating keep the identity
    channel_update(channel=channel, data={"is_active": False})
    assert (
        channel_update(channel=channel, data={"is_active": True}).identifier == channel.identifier
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"phone_number": "+14155238886"}, "phone_number"),
        ({"settings": {"instagram_account_id": "abc"}}, "settings"),
        ({"settings": {}}, "settings"),
        ({"identifier": "instagram:999"}, "identifier"),
        ({"channel_type": "whatsapp"}, "channel_type"),
    ],
)
def test_bad_instagram_channels_are_refused(tenant, kwargs, field):
    arguments = {
        "tenant": tenant,
        "provider": "instagram",
        "settings": {"instagram_account_id": ACCOUNT},
        "secrets": {"access_token": TOKEN},
        **kwargs,
    }
    with pytest.raises(ValidationError) as caught:
        channel_create(**arguments)
    assert field in caught.value.message_dict
    assert not ChannelInstance.objects.exists()


def test_one_account_is_one_channel(tenant, other_tenant):
    instagram_channel(tenant)
    with pytest.raises(ValidationError) as caught:
        instagram_channel(other_tenant)
    assert "identifier" in caught.value.message_dict


def test_the_api_creates_one_and_another_tenant_cannot_see_it(tenant, other_tenant):
    client = key_client(tenant)
    url = reverse("channel-list", kwargs={"tenant": tenant.pk})
    created = client.post(
        url,
        {
            "provider": "instagram",
            "settings": {"instagram_account_id": ACCOUNT},
            "secrets": {"access_token": TOKEN},
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["channel_type"], body["identifier"], body["phone_number"]) == (
        "instagram",
        f"instagram:{ACCOUNT}",
        "",
    )
    assert TOKEN not in created.content.decode()
    detail = reverse("channel-detail", kwargs={"tenant": tenant.pk, "channel": body["id"]})
    assert client.get(detail).status_code == 200
    other = key_client(other_tenant)
    other_detail = reverse(
        "channel-detail", kwargs={"tenant": other_tenant.pk, "channel": body["id"]}
    )
    assert other.get(other_detail).status_code == 404
    assert other.patch(other_detail, {"is_active": False}, format="json").status_code == 404


def test_the_admin_form_offers_its_inputs(tenant):
    from channels_app.forms import ChannelForm

    form = ChannelForm(
        data={
            "provider": "instagram",
            "phone_number": "",
            "identifier": "",
            "is_active": "on",
            "instagram_account_id": ACCOUNT,
            "instagram_access_token": TOKEN,
        }
    )
    assert form.fields["instagram_account_id"].widget.attrs["data-channel-provider-field"] == (
        "instagram"
    )
    assert form.is_valid(), form.errors
    channel = form.save_through_services(tenant=tenant)
    assert channel.identifier == f"instagram:{ACCOUNT}"
    assert channel.secrets == {"access_token": TOKEN}


# -- webhooks in -------------------------------------------------------------------------------


def test_the_verification_handshake(client):
    params = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    ok = client.get(WEBHOOK, {**params, "hub.verify_token": "test-verify-token"})
    assert (ok.status_code, ok.content) == (200, b"1158201444")
    assert client.get(WEBHOOK, {**params, "hub.verify_token": "wrong"}).status_code == 403
    assert client.get(WEBHOOK).status_code == 403


def test_a_text_message_makes_an_instagram_contact_once(client, tenant, no_flow):
    channel = instagram_channel(tenant)
    assert post(client, payload("message_text")).status_code == 200
    assert post(client, payload("message_text")).status_code == 200  # redelivered: a no-op

    message = Message.objects.get()
    assert (message.kind, message.text, message.direction) == ("text", "Hello", "inbound")
    assert message.channel_id == channel.pk
    mid = load("instagram/message_text.json")["entry"][0]["messaging"][0]["message"]["mid"]
    assert len(mid) > 128  # Instagram's ids are long: kept whole, as a keyed hash
    assert Message.objects.filter(channel=channel, provider_message_id=mid).get() == message
    contact = message.thread.contact
    assert contact.ig_user_id == IGSID
    assert contact.ig_user_lookup == ig_user_lookup(IGSID)
    assert (contact.phone, contact.phone_lookup, contact.wa_user_id) == ("", None, "")
    assert contact.external_id.startswith("ig_") and IGSID not in contact.external_id
    assert no_flow == [message.pk]


def test_an_instagram_id_is_never_matched_to_a_whatsapp_contact(client, tenant, no_flow):
    # given: a WhatsApp contact whose phone has the same digits as the Instagram id
    whatsapp = factories.ContactFactory(
        tenant=tenant, phone=f"+{IGSID[:15]}", phone_lookup=phone_lookup(f"+{IGSID[:15]}")
    )
    instagram_channel(tenant)
    # when
    post(client, payload("message_text", mid="m1", text=IGSID[:15]))
    # then
    contact = Message.objects.get().thread.contact
    assert contact.pk != whatsapp.pk
    assert Contact.objects.filter(tenant=tenant).count() == 2


def test_signatures_are_checked_before_anything_is_stored(client, tenant):
    instagram_channel(tenant)
    assert post(client, payload("message_text"), signature="").status_code == 403
    assert post(client, payload("message_text"), signature="sha256=" + "0" * 64).status_code == 403
    assert post(client, payload("message_text"), signature="sha256=" + "é" * 64).status_code == 403
    assert post(client, None, raw=b"{not json", signature="sha256=00").status_code == 403
    assert not Message.objects.exists()


def test_a_channel_with_its_own_app_secret_is_covered_by_it_alone(client, tenant, no_flow):
    instagram_channel(tenant, app_secret="tenant-app-secret")
    assert post(client, payload("message_text"), secret="tenant-app-secret").status_code == 200
    assert Message.objects.count() == 1
    # the platform's secret no longer covers this channel
    other = payload("message_text", mid="m2")
    assert post(client, other).status_code == 200
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 50_000 + b"]" * 50_000,
        b'{"object": "page", "entry": []}',
        b'{"object": "instagram"}',
        b"\xff\xfe",
    ],
)
def test_bodies_that_are_not_instagram_webhooks_are_400(client, tenant, raw):
    instagram_channel(tenant)
    response = post(client, None, raw=raw)
    assert response.status_code == 400
    assert not Message.objects.exists()


def test_unknown_and_malformed_events_are_skipped_not_500(client, tenant, no_flow):
    instagram_channel(tenant)
    body = payload("message_text")
    body["entry"][0]["messaging"] += [
        {"sender": {"id": IGSID}, "recipient": {"id": ACCOUNT}, "timestamp": 1, "optin": {}},
        {"sender": {"id": IGSID}, "message": "not an object"},
        {"sender": {"id": IGSID}, "reaction": {"action": "react"}},
        {"sender": {"id": 5}, "message": {"mid": "x" * 500, "text": ["no"]}},
        "not an event",
    ]
    body["entry"] += [{"id": ACCOUNT, "changes": [{"field": "comments", "value": {}}]}, {"id": {}}]
    assert post(client, body).status_code == 200
    assert Message.objects.count() == 2  # the text, and the id-5 message as unsupported
    assert set(Message.objects.values_list("kind", flat=True)) == {"text", "unsupported"}


def test_media_story_replies_and_reactions_are_received(client, tenant, no_flow):
    instagram_channel(tenant)
    media_url = load("instagram/message_media.json")["entry"][0]["messaging"][0]["message"][
        "attachments"
    ][0]["payload"]["url"]
    with responses.RequestsMock() as cdn:
        cdn.get(media_url, body=b"\xff\xd8jpeg", content_type="image/jpeg")
        for name in ("message_media", "story_reply", "reaction"):
            assert post(client, payload(name)).status_code == 200
    image, story, reaction = Message.objects.order_by("created_at")
    assert image.kind == "image"
    attachment = MessageAttachment.objects.get(message=image)
    assert (attachment.media_type, attachment.url) == ("image", media_url)
    assert attachment.download_status == "stored"
    assert attachment.file.read() == b"\xff\xd8jpeg"
    assert (story.kind, story.text) == ("text", "Love this!")
    assert story.metadata["provider_type"] == "story_reply"
    assert story.private_data["story_reply"]["story_id"] == "17900000000000002"
    assert reaction.kind == "reaction"
    assert reaction.private_data["reaction"] == {
        "message_id": "OUR-MESSAGE-ID",
        "emoji": "\u2764\ufe0f",
        "name": "love",
        "action": "react",
    }
    assert set(no_flow) == {image.pk, story.pk, reaction.pk}  # (the flows skip reactions)
    # the reaction again is the same message
    post(client, payload("reaction"))
    assert Message.objects.filter(kind="reaction").count() == 1


def test_an_unsent_image_is_deleted_with_its_stored_file(client, tenant, no_flow):
    from django.core.files.storage import default_storage

    instagram_channel(tenant)
    media = payload("message_media")
    url = media["entry"][0]["messaging"][0]["message"]["attachments"][0]["payload"]["url"]
    with responses.RequestsMock() as cdn:
        cdn.get(url, body=b"\xff\xd8jpeg", content_type="image/jpeg")
        post(client, media)
    stored = MessageAttachment.objects.get().file.name
    assert default_storage.exists(stored)
    unsend = payload("message_deleted")
    unsend["entry"][0]["messaging"][0]["message"]["mid"] = media["entry"][0]["messaging"][0][
        "message"
    ]["mid"]
    assert post(client, unsend).status_code == 200
    assert not MessageAttachment.all_objects.exists()
    assert not default_storage.exists(stored)
    assert Message.objects.get().metadata["unsent"] is True


def test_media_is_fetched_from_metas_cdn_only(tenant):
    from channels_app.providers.base import MediaDownloadError
    from channels_app.providers.instagram import InstagramProvider

    channel = instagram_channel(tenant)
    with pytest.raises(MediaDownloadError) as refused:
        InstagramProvider().fetch_media(
            channel=channel, url="https://169.254.169.254/latest", media_id=""
        )
    assert refused.value.retryable is False
    with responses.RequestsMock() as mocked:
        mocked.get("https://lookaside.fbsbx.com/x", body=b"img", content_type="image/jpeg")
        media = InstagramProvider().fetch_media(
            channel=channel, url="https://lookaside.fbsbx.com/x", media_id=""
        )
    assert (media.content, media.content_type) == (b"img", "image/jpeg")


def test_echoes_are_skipped_and_run_no_flow(client, tenant, no_flow):
    instagram_channel(tenant)
    assert post(client, payload("echo")).status_code == 200
    assert not Message.objects.exists() and not Contact.objects.exists()
    assert no_flow == []


def test_edits_replace_the_text_and_unsends_clear_it(client, tenant, no_flow):
    instagram_channel(tenant)
    post(client, payload("message_text"))
    post(client, payload("message_edit"))
    message = Message.objects.get()
    assert message.text == "Hello there" and message.metadata["edit_count"] == 1
    older = payload("message_edit")
    older["entry"][0]["messaging"][0]["message_edit"].update(text="stale", num_edit=0)
    post(client, older)
    message.refresh_from_db()
    assert message.text == "Hello there"

    post(client, payload("message_deleted"))
    post(client, payload("message_deleted"))  # redelivered
    message.refresh_from_db()
    assert message.text == "" and message.metadata["unsent"] is True
    assert no_flow == [message.pk]  # neither an edit nor an unsend runs the flow again


# -- replies out ---------------------------------------------------------------------------------


@responses.activate
def test_a_flow_turn_end_to_end(client, tenant):
    # given: the fitness flow on an Instagram channel and the stand-in Graph API
    tenant.name = "Acme Fitness"
    tenant.save()
    channel = instagram_channel(tenant)
    fitness(channel)
    graph = Graph()
    responses.add_callback(responses.POST, GRAPH, callback=graph)

    # when: the person writes, then taps the "prices" quick reply
    post(client, payload("message_text"))
    post(
        client,
        payload(
            "message_text",
            mid="aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDAxOnF1aWNrMQZDZD",
            text="Membership prices",
            quick_reply={"payload": "prices"},
        ),
    )

    # then: the replies went to the account's messages edge with its token, to the person
    assert {r.headers["Authorization"] for r in graph.requests} == {f"Bearer {TOKEN}"}
    recipient = {"id": IGSID}
    assert graph.bodies == [
        {"recipient": recipient, "message": {"text": "Hi! Welcome to Acme Fitness."}},
        {
            "recipient": recipient,
            "message": {
                "text": "How can we help you today?",
                "quick_replies": [
                    {"content_type": "text", "title": "Book a free trial", "payload": "trial"},
                    {"content_type": "text", "title": "Membership prices", "payload": "prices"},
                    {"content_type": "text", "title": "Something else", "payload": "other"},
                ],
            },
        },
        {
            "recipient": recipient,
            "message": {"text": "Memberships start at 39/month, no joining fee."},
        },
        {
            "recipient": recipient,
            "message": {
                "text": "Would you like to book a free trial?",
                "quick_replies": [
                    {"content_type": "text", "title": "Yes", "payload": "yes"},
                    {"content_type": "text", "title": "No", "payload": "no"},
                ],
            },
        },
    ]
    outbound = Message.objects.filter(direction="outbound").order_by("created_at")
    assert [m.status for m in outbound] == ["sent"] * 4
    assert [m.provider_message_id for m in outbound] == [f"igout.{n:04d}" for n in range(1, 5)]
    tapped = Message.objects.filter(direction="inbound").order_by("created_at").last()
    assert (tapped.kind, tapped.metadata["interactive_id"]) == ("interactive", "prices")

    # and a read receipt naming the latest reply marks it and the earlier ones read
    read = payload("read")
    read["entry"][0]["messaging"][0]["read"]["mid"] = "igout.0004"
    assert post(client, read).status_code == 200
    assert set(Message.objects.filter(direction="outbound").values_list("status", flat=True)) == {
        "read"
    }
    assert all(m.read_at for m in Message.objects.filter(direction="outbound"))


def _thread(tenant):
    channel = instagram_channel(tenant)
    contact = Contact.objects.create(
        tenant=tenant, ig_user_id=IGSID, ig_user_lookup=ig_user_lookup(IGSID)
    )
    thread = ChatThread.objects.create(tenant=tenant, channel=channel, contact=contact)
    factories.MessageFactory(thread=thread, text="hi")  # opens the 24-hour window
    return thread


@responses.activate
def test_a_refusal_is_recorded_with_the_providers_reason(tenant):
    thread = _thread(tenant)
    responses.post(GRAPH, status=400, json=load("instagram/send_error_outside_window.json"))
    with run_on_commit():
        (message,) = replies_store(thread=thread, replies=[Reply(text="Still there?")])
    message.refresh_from_db()
    assert message.status == "failed"
    assert message.error_code == "10/2534022"
    assert message.error_detail == "(#10) This message is sent outside of allowed window."
    assert len(responses.calls) == 1  # a permanent refusal is not repeated


@responses.activate
def test_a_throttled_send_is_tried_again_later(tenant):
    from conversations.services.outbound import TransientDeliveryError

    thread = _thread(tenant)
    error = {"error": {"message": "Application request limit reached", "code": 4}}
    responses.post(GRAPH, status=400, json=error)
    message = replies_store(thread=thread, replies=[Reply(text="Hello")])[0]
    with pytest.raises(TransientDeliveryError):
        message_deliver(message_id=message.pk)
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("queued", "4")


@responses.activate
def test_media_goes_first_as_an_attachment(tenant):
    from channels_app.providers import OutboundPayload
    from channels_app.providers.instagram import build_messages

    bodies = build_messages(
        OutboundPayload(
            to_phone="",
            to_ig_user_id=IGSID,
            text="Our timetable",
            media_url="https://cdn.example.com/timetable.png",
        )
    )
    assert bodies == [
        {
            "recipient": {"id": IGSID},
            "message": {
                "attachment": {
                    "type": "image",
                    "payload": {"url": "https://cdn.example.com/timetable.png"},
                }
            },
        },
        {"recipient": {"id": IGSID}, "message": {"text": "Our timetable"}},
    ]


# -- GDPR, API, inbox, tenants ------------------------------------------------------------------


def test_gdpr_export_and_erase_by_instagram_id(client, tenant, no_flow):
    instagram_channel(tenant)
    post(client, payload("message_text"))
    tenant_id = str(tenant.pk)
    contact = contact_find(tenant_id=tenant_id, ig_user_id=IGSID)
    out = StringIO()
    call_command("gdpr_export", "--tenant", tenant_id, "--ig-user-id", IGSID, stdout=out)
    exported = json.loads(out.getvalue())
    assert exported["contact"]["ig_user_id"] == IGSID
    assert exported["contact"]["phone"] == ""
    call_command("gdpr_erase", "--tenant", tenant_id, "--ig-user-id", IGSID, stdout=out)
    contact.refresh_from_db()
    assert (contact.ig_user_id, contact.ig_user_lookup) == ("", None)
    assert contact.erased_at is not None
    assert Message.objects.get().text == ""
    # a new message from the same person makes a new contact, not the erased one
    post(client, payload("message_text", mid="after-erasure"))
    assert (
        Contact.objects.filter(ig_user_lookup=ig_user_lookup(IGSID)).exclude(pk=contact.pk).exists()
    )


def test_the_api_shows_and_filters_instagram_contacts_per_tenant(
    client, tenant, other_tenant, no_flow
):
    instagram_channel(tenant)
    post(client, payload("message_text"))
    Contact.objects.create(
        tenant=other_tenant, ig_user_id=IGSID, ig_user_lookup=ig_user_lookup(IGSID)
    )
    api = key_client(tenant)
    url = reverse("contact-list", kwargs={"tenant": tenant.pk})
    rows = api.get(url, {"ig_user_id": IGSID}).json()["results"]
    assert [(r["phone"], r["wa_user_id"], r["ig_user_id"]) for r in rows] == [("", "", IGSID)]
    assert api.get(url, {"ig_user_id": "999"}).json()["results"] == []
    threads = api.get(reverse("thread-list", kwargs={"tenant": tenant.pk})).json()["results"]
    assert [t["contact"]["ig_user_id"] for t in threads] == [IGSID]


def test_the_inbox_finds_a_conversation_by_instagram_id(client, tenant, member, no_flow):
    from conversations.tests.inbox_support import logged_in

    instagram_channel(tenant)
    post(client, payload("message_text"))
    thread = ChatThread.objects.get()
    staff = logged_in(member(tenant, "viewer"))
    for query in (IGSID, f"instagram:{IGSID}"):
        rows = staff.get("/admin/inbox/", {"q": query, "status": "all"}).context["rows"]
        assert [r["thread"].pk for r in rows] == [thread.pk]
    assert (
        staff.get("/admin/inbox/", {"q": "1234567890123457", "status": "all"}).context["rows"] == []
    )


def test_each_tenants_account_gets_its_own_messages(client, tenant, other_tenant, no_flow):
    mine = instagram_channel(tenant)
    theirs = instagram_channel(other_tenant, account="17841400000000002")
    body = payload("message_text")
    second = copy.deepcopy(body["entry"][0])
    second["id"] = "17841400000000002"
    second["messaging"][0]["recipient"]["id"] = "17841400000000002"
    second["messaging"][0]["message"]["mid"] = "for-the-other-account"
    body["entry"].append(second)
    assert post(client, body).status_code == 200
    assert {(m.channel_id, m.tenant_id) for m in Message.objects.all()} == {
        (mine.pk, tenant.pk),
        (theirs.pk, other_tenant.pk),
    }
    contacts = Contact.objects.filter(ig_user_lookup=ig_user_lookup(IGSID))
    assert sorted(str(c.tenant_id) for c in contacts) == sorted(
        [str(tenant.pk), str(other_tenant.pk)]
    )
    # a tenant's own app secret cannot sign for the other tenant's account
    channel_update(channel=mine, data={"secrets": {"app_secret": "mine-only"}})
    forged = payload("message_text", mid="forged")
    forged["entry"][0]["id"] = "17841400000000002"
    assert post(client, forged, secret="mine-only").status_code == 403
    assert not Message.objects.filter(provider_message_id="forged").exists()


def test_the_admin_shows_its_setup_steps_and_hides_it_from_other_tenants(
    admin_client, tenant, other_tenant, member
):
    from conversations.tests.inbox_support import logged_in

    channel = instagram_channel(tenant)
    page = admin_client.get(f"/admin/channels_app/channelinstance/{channel.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/api/webhooks/instagram</code>" in html
    assert "messaging_seen" in html
    assert "Send a test message</a>" not in html  # a test message goes to a phone number
    listing = admin_client.get("/admin/channels_app/channelinstance/").content.decode()
    assert "Instagram (Instagram API with Instagram Login)" in listing
    outsider = logged_in(member(other_tenant, "owner"))
    assert outsider.get(
        f"/admin/channels_app/channelinstance/{channel.pk}/change/"
    ).status_code in (
        302,
        404,
    )


@responses.activate
def test_an_agent_answers_from_the_inbox(client, tenant, member, no_flow):
    from conversations.tests.inbox_support import logged_in

    # given: a person wrote to the Instagram account
    instagram_channel(tenant)
    post(client, payload("message_text"))
    thread = ChatThread.objects.get()
    graph = Graph()
    responses.add_callback(responses.POST, GRAPH, callback=graph)
    agent = logged_in(member(tenant, "agent"))

    # when: an agent opens the conversation and answers
    page = agent.get(reverse("admin:inbox-thread", args=[thread.pk]))
    act = reverse("admin:inbox-thread-act", args=[thread.pk])
    with run_on_commit():
        answered = agent.post(act, {"action": "reply", "text": "Hi! How can we help?"})

    # then: the page showed the message and a masked id, and the answer went to Instagram
    assert page.status_code == 200
    html = page.content.decode()
    assert "Hello" in html and IGSID not in html and IGSID[-4:] in html
    assert answered.status_code == 302
    assert graph.bodies == [
        {"recipient": {"id": IGSID}, "message": {"text": "Hi! How can we help?"}}
    ]
    reply = Message.objects.get(direction="outbound")
    assert (reply.status, reply.provider_message_id) == ("sent", "igout.0001")


def test_the_instagram_id_is_encrypted_at_rest_and_rotated(client, tenant, no_flow):
    from django.db import connection

    from core import rotation

    instagram_channel(tenant)
    post(client, payload("message_text"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT ig_user_id, ig_user_lookup, external_id FROM conversations_contact")
        stored = cursor.fetchone()
    assert all(IGSID not in str(value) for value in stored)
    found = {(g.label, f.attname) for g in rotation.encrypted_field_groups() for f in g.fields}
    assert ("conversations.Contact", "ig_user_id") in found


@responses.activate
def test_a_send_replayed_from_metas_documented_answer(tenant):
    # given: Meta's documented answer to a send
    thread = _thread(tenant)
    answer = load("instagram/send_200.json")
    responses.post(GRAPH, json=answer)
    # when
    with run_on_commit():
        (message,) = replies_store(thread=thread, replies=[Reply(text="Hello!")])
    # then: the request is the documented one, and the answer's message_id is the provider id
    (call,) = responses.calls
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(call.request.body) == {
        "recipient": {"id": IGSID},
        "message": {"text": "Hello!"},
    }
    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == ("sent", answer["message_id"])


def test_an_inactive_channel_and_an_unreaction(client, tenant, no_flow):
    channel = instagram_channel(tenant)
    channel_update(channel=channel, data={"is_active": False})
    assert post(client, payload("message_text")).status_code == 200
    assert not Message.objects.exists()  # an inactive channel's deliveries are skipped
    channel_update(channel=channel, data={"is_active": True})
    unreact = payload("reaction")
    unreact["entry"][0]["messaging"][0]["reaction"] = {"mid": "OUR-MESSAGE-ID", "action": "unreact"}
    assert post(client, unreact).status_code == 200
    removed = Message.objects.get()
    assert removed.private_data["reaction"]["action"] == "unreact"
    assert removed.private_data["reaction"]["emoji"] == ""


def test_an_instagram_channels_page_shows_its_own_webhook_url(tenant, member):
    from django.test import Client
    from django.urls import reverse

    channel = instagram_channel(tenant)
    client = Client()
    client.force_login(member(tenant, "owner"))
    page = client.get(
        reverse("admin:channels_app_channelinstance_change", args=[channel.pk])
    ).content.decode()
    assert 'value="https://chatai.example.com/api/webhooks/instagram"' in page
    assert 'value="https://chatai.example.com/api/webhooks/whatsapp"' not in page


# -- review regressions --------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [True, False])
def test_an_edit_count_too_large_for_an_integer_is_not_a_500(client, tenant, no_flow, signed):
    instagram_channel(tenant)
    raw = (
        b'{"object":"instagram","entry":[{"id":"' + ACCOUNT.encode() + b'","messaging":'
        b'[{"message_edit":{"mid":"m1","text":"x","num_edit":1e400}}]}]}'
    )
    response = post(client, None, raw=raw, signature=None if signed else "")
    assert response.status_code < 500


def test_an_edit_never_brings_back_an_erased_text(client, tenant, no_flow):
    # given a message whose contact was erased
    instagram_channel(tenant)
    post(client, payload("message_text"))
    call_command("gdpr_erase", "--tenant", str(tenant.pk), "--ig-user-id", IGSID, stdout=StringIO())

    # when the contact's edit of it arrives
    post(client, payload("message_edit"))

    # then the text stays erased
    assert Message.objects.get().text == ""


def test_a_read_receipt_naming_the_contacts_own_message_changes_nothing(client, tenant, no_flow):
    instagram_channel(tenant)
    post(client, payload("message_text"))
    inbound = Message.objects.get()
    read = payload("read")
    read["entry"][0]["messaging"][0]["read"]["mid"] = load("instagram/message_text.json")["entry"][
        0
    ]["messaging"][0]["message"]["mid"]

    post(client, read)

    inbound.refresh_from_db()
    assert inbound.status == "received"


def test_a_long_text_goes_out_in_parts_of_at_most_1000_bytes():
    from channels_app.providers import OutboundPayload
    from channels_app.providers.instagram import build_messages

    text = ("Olá, é a nossa agenda da semana. " * 60).strip()  # about 2,000 bytes
    bodies = build_messages(
        OutboundPayload(
            to_phone="",
            to_ig_user_id=IGSID,
            text=text,
            choices=(("yes", "Yes"), ("no", "No")),
        )
    )
    texts = [body["message"]["text"] for body in bodies]
    assert len(texts) >= 2
    assert all(len(part.encode("utf-8")) <= 1000 for part in texts)
    assert " ".join(texts) == text  # cut at spaces, nothing lost
    assert [("quick_replies" in body["message"]) for body in bodies] == [False] * (
        len(bodies) - 1
    ) + [True]


@responses.activate
def test_media_and_text_record_the_last_parts_id_so_a_read_of_it_marks_the_message(tenant):
    thread = _thread(tenant)
    graph = Graph()
    responses.add_callback(responses.POST, GRAPH, callback=graph)
    with run_on_commit():
        (message,) = replies_store(
            thread=thread,
            replies=[Reply(text="Our timetable", media_url="https://cdn.example.com/t.png")],
        )
    message.refresh_from_db()
    assert len(graph.bodies) == 2
    assert message.status == "sent" and message.provider_message_id == "igout.0002"


# -- edits and unsends that overtake their message -----------------------------------------------


def _mid(body):
    return body["entry"][0]["messaging"][0]["message"]["mid"]


def _unsend_of(body):
    unsend = payload("message_deleted")
    unsend["entry"][0]["messaging"][0]["message"]["mid"] = _mid(body)
    return unsend


def test_an_unsend_before_its_message_stores_it_already_unsent(client, tenant, no_flow):
    from integrations.models import WebhookDelivery

    # given: the contact unsent a message whose own delivery has not come yet, and the
    # tenant hears of received messages
    instagram_channel(tenant)
    factories.WebhookEndpointFactory(tenant=tenant, events=["message.received"])
    assert post(client, payload("message_deleted")).status_code == 200
    assert not Message.objects.exists()

    # when the message is delivered after all
    assert post(client, payload("message_text")).status_code == 200

    # then it is in the thread, with nothing of what the contact took back, marked unsent,
    # and no flow answered it
    message = Message.objects.get()
    assert (message.text, message.private_data) == ("", {})
    assert message.metadata["unsent"] is True
    assert no_flow == []
    # nor did the tenant's webhook endpoint hear the text
    (delivery,) = WebhookDelivery.objects.filter(event="message.received")
    assert delivery.payload["message"]["text"] == ""


def test_an_unsent_image_delivered_late_keeps_no_attachment(client, tenant, no_flow):
    # given
    instagram_channel(tenant)
    media = payload("message_media")
    post(client, _unsend_of(media))

    # when (the CDN is never asked for the image)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as cdn:
        post(client, media)
        assert not cdn.calls

    # then
    message = Message.objects.get()
    assert message.metadata["unsent"] is True
    assert not MessageAttachment.all_objects.exists()


def test_an_unsend_before_its_message_holds_through_two_redeliveries(client, tenant, no_flow):
    # given
    instagram_channel(tenant)
    post(client, payload("message_deleted"))

    # when the message comes twice (Meta redelivers it)
    post(client, payload("message_text"))
    post(client, payload("message_text"))

    # then it is one message, still without its text
    message = Message.objects.get()
    assert message.text == "" and message.metadata["unsent"] is True
    assert no_flow == []


def test_an_unsend_after_its_message_still_clears_it_and_keeps_nothing(client, tenant, no_flow):
    from conversations.services.receipts import _early_edit_keys

    # given a message the flow has answered
    channel = instagram_channel(tenant)
    post(client, payload("message_text"))

    # when the contact unsends it, and the message is redelivered afterwards
    post(client, payload("message_deleted"))
    post(client, payload("message_text"))

    # then the text is gone and stays gone; nothing was kept for later
    message = Message.objects.get()
    assert message.text == "" and message.metadata["unsent"] is True
    assert no_flow == [message.pk]
    assert cache.get_many(list(_early_edit_keys(channel.pk, _mid(payload("message_text"))))) == {}


def test_a_kept_unsend_lasts_as_long_as_redeliveries_and_then_expires(
    client, tenant, no_flow, monkeypatch
):
    from conversations.services.receipts import EARLY_UNSEND_SECONDS

    assert EARLY_UNSEND_SECONDS >= 24 * 3600  # Meta redelivers a failed delivery for hours
    import time

    from conversations.services import receipts

    # given an unsend kept for one second only
    monkeypatch.setattr(receipts, "EARLY_UNSEND_SECONDS", 1)
    instagram_channel(tenant)
    post(client, payload("message_deleted"))

    # when its message comes after that
    time.sleep(1.2)
    post(client, payload("message_text"))

    # then the unsend was forgotten: the message is stored as it came
    message = Message.objects.get()
    assert message.text == "Hello" and "unsent" not in message.metadata
    assert no_flow == [message.pk]


def test_an_edit_before_its_message_is_applied_when_it_comes(client, tenant, no_flow):
    # given the contact's edit of a message not delivered yet
    instagram_channel(tenant)
    post(client, payload("message_edit"))

    # when the message comes (with the text as first written), then again
    post(client, payload("message_text"))
    post(client, payload("message_text"))

    # then it reads as the contact last wrote it
    message = Message.objects.get()
    assert message.text == "Hello there" and message.metadata["edit_count"] == 1


@pytest.mark.parametrize("order", ["edit first", "unsend first"])
def test_an_edit_never_brings_back_an_unsent_text(client, tenant, no_flow, order):
    # given an edit and an unsend, both before their message
    instagram_channel(tenant)
    early = [payload("message_edit"), payload("message_deleted")]
    for body in early if order == "edit first" else early[::-1]:
        post(client, body)

    # when the message comes, and the edit is redelivered after it
    post(client, payload("message_text"))
    post(client, payload("message_edit"))

    # then the message stays unsent
    message = Message.objects.get()
    assert message.text == "" and message.metadata["unsent"] is True
    assert "edit_count" not in message.metadata


def test_kept_edits_name_no_id_and_logs_show_no_content(client, tenant, no_flow, caplog):
    from conversations.services import receipts

    mid = _mid(payload("message_text"))
    kept = {}
    real_cache = receipts.cache

    class Recording:
        def set(self, key, value, *args, **kwargs):
            kept[key] = value
            return real_cache.set(key, value, *args, **kwargs)

        def __getattr__(self, name):
            return getattr(real_cache, name)

    # given an edit and an unsend of a message not delivered yet
    instagram_channel(tenant)
    with pytest.MonkeyPatch.context() as patch, caplog.at_level("DEBUG"):
        patch.setattr(receipts, "cache", Recording())
        post(client, payload("message_edit"))
        post(client, payload("message_deleted"))

        # when it comes
        post(client, payload("message_text"))

    # then the cache keys name the message by a digest, the edit's text is encrypted there
    assert len(kept) == 2
    assert not any(mid in key or mid[:40] in key for key in kept)
    assert "Hello there" not in repr(kept)
    # and no log line carries the id or either text
    assert Message.objects.get().metadata["unsent"] is True
    assert caplog.records
    for record in caplog.records:
        line = f"{record.getMessage()} {record.__dict__}"
        assert mid[:40] not in line
        assert "Hello" not in line


def test_a_message_stored_while_its_unsend_is_kept_is_cleared(client, tenant, no_flow, monkeypatch):
    from channels_app.providers.instagram import parse_payload
    from conversations.services import receipts
    from conversations.services.inbound import message_receive

    # given: the unsend finds no message, and the message is stored (looking for kept edits
    # and finding none) right while the unsend is being kept
    channel = instagram_channel(tenant)
    real_cache = receipts.cache

    class StoredMeanwhile:
        def set(self, *args, **kwargs):
            ((_, inbound),) = parse_payload(payload("message_text"))
            with run_on_commit():
                message_receive(channel=channel, inbound=inbound)
            return real_cache.set(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(real_cache, name)

    monkeypatch.setattr(receipts, "cache", StoredMeanwhile())

    # when
    post(client, payload("message_deleted"))

    # then the unsend's second look found the message and cleared it
    message = Message.objects.get()
    assert message.text == "" and message.metadata["unsent"] is True


def test_an_unsend_kept_while_its_message_is_being_stored_is_applied(
    client, tenant, no_flow, monkeypatch
):
    from channels_app.providers.instagram import parse_payload
    from conversations.services import receipts

    # given: while the message is being stored (after its look for kept edits, before its
    # commit) the unsend comes, finds no committed message and is kept
    channel = instagram_channel(tenant)
    real_cache = receipts.cache
    ((_, unsend),) = parse_payload(payload("message_deleted"))

    class UnsentMeanwhile:
        looks = 0

        def get_many(self, keys):
            found = real_cache.get_many(keys)
            self.looks += 1
            if self.looks == 1:
                receipts._early_edit_keep(channel=channel, edit=unsend)
            return found

        def __getattr__(self, name):
            return getattr(real_cache, name)

    monkeypatch.setattr(receipts, "cache", UnsentMeanwhile())

    # when the message's delivery completes
    post(client, payload("message_text"))

    # then the look after commit applied the unsend before the flow saw the message
    message = Message.objects.get()
    assert message.text == "" and message.metadata["unsent"] is True
    assert no_flow == []
