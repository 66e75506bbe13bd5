"""The staff inbox: the list, a conversation, acting on it, live updates and media, for each
role; another tenant's thread is a 404; pages cost a bounded number of queries."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from conversations.models import ChatThread, Message, MessageAttachment, ThreadNote
from conversations.tests.inbox_support import logged_in
from tests import factories

INBOX = "/admin/inbox/"


@pytest.mark.django_db
def test_the_list_shows_who_waits_first_with_name_snippet_and_unread(tenant, member, waiting):
    quiet = factories.ThreadFactory(
        channel=waiting.channel, contact=factories.ContactFactory(tenant=tenant, name="Zé")
    )
    factories.MessageFactory(thread=quiet, text="ok obrigado")
    page = logged_in(member(tenant, "agent")).get(INBOX)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("Maria da Silva") < html.index("Zé")
    assert "Preciso falar com alguém" in html and "Needs a human" in html
    rows = page.context["rows"]
    assert rows[0]["unread"] == 1 and rows[0]["waiting_since"] is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("maria", True),
        ("SILVA maria", True),
        ("Maria Silvã", True),
        ("mar", False),
        ("+55 11 98888-7777", True),
        ("+5511988880000", False),
        ("+55 11 98888-7777 ext 2", False),  # phone-like but not a number: nothing, not all
    ],
)
def test_search_by_name_words_and_exact_phone(tenant, member, waiting, query, found):
    page = logged_in(member(tenant, "viewer")).get(INBOX, {"q": query, "status": "all"})
    assert ("Maria da Silva" in page.content.decode()) is found


@pytest.mark.django_db
def test_search_by_whatsapp_user_id(tenant, member, waiting):
    from core.crypto import wa_user_lookup

    contact = waiting.contact
    contact.wa_user_id, contact.wa_user_lookup = (
        "BR.1502576394655843",
        wa_user_lookup("BR.1502576394655843"),
    )
    contact.save()
    client = logged_in(member(tenant, "viewer"))
    rows = client.get(INBOX, {"q": "BR.1502576394655843", "status": "all"}).context["rows"]
    assert [r["thread"].pk for r in rows] == [waiting.pk]
    assert client.get(INBOX, {"q": "BR.1502576394655844", "status": "all"}).context["rows"] == []


@pytest.mark.django_db
def test_search_by_thread_or_contact_id(tenant, member, waiting):
    client = logged_in(member(tenant, "viewer"))
    for value in (waiting.pk, waiting.contact_id):
        assert [r["thread"].pk for r in client.get(INBOX, {"q": str(value)}).context["rows"]] == [
            waiting.pk
        ]


@pytest.mark.django_db
def test_filters_mine_unassigned_needs_human_channel(tenant, member, waiting):
    agent = member(tenant, "agent")
    other = factories.ThreadFactory(
        channel=factories.TwilioChannelFactory(tenant=tenant), assigned_to=agent
    )
    client = logged_in(agent)

    def ids(**params):
        return {row["thread"].pk for row in client.get(INBOX, params).context["rows"]}

    assert ids(mine="1") == {other.pk}
    assert ids(unassigned="1") == {waiting.pk}
    assert ids(needs_human="1") == {waiting.pk}
    assert ids(channel=str(other.channel_id)) == {other.pk}


@pytest.mark.django_db
def test_another_tenants_thread_is_404_everywhere(tenant, other_tenant, member, waiting):
    client = logged_in(member(other_tenant, "owner"))
    assert waiting.pk not in {r["thread"].pk for r in client.get(INBOX).context["rows"]}
    for name in ("admin:inbox-thread", "admin:inbox-thread-updates"):
        assert client.get(reverse(name, args=[waiting.pk])).status_code == 404
    act = reverse("admin:inbox-thread-act", args=[waiting.pk])
    assert client.post(act, {"action": "reply", "text": "hi"}).status_code == 404
    assert not Message.objects.filter(thread=waiting, direction="outbound").exists()


@pytest.mark.django_db
def test_a_viewer_reads_but_cannot_act(tenant, member, waiting):
    client = logged_in(member(tenant, "viewer"))
    page = client.get(reverse("admin:inbox-thread", args=[waiting.pk]))
    assert page.status_code == 200 and "Send reply" not in page.content.decode()
    act = reverse("admin:inbox-thread-act", args=[waiting.pk])
    for action in ("reply", "note", "assign_me", "close", "resume"):
        assert client.post(act, {"action": action, "text": "x"}).status_code == 403
    waiting.refresh_from_db()
    assert waiting.agent_last_seen_at is None  # a viewer's reading marks nothing read


@pytest.mark.django_db
def test_an_agent_replies_notes_assigns_and_closes(tenant, member, waiting):
    agent = member(tenant, "agent", first_name="Ana")
    client = logged_in(agent)
    act = reverse("admin:inbox-thread-act", args=[waiting.pk])
    assert client.post(act, {"action": "reply", "text": "Olá, Maria!"}).status_code == 302
    reply = Message.objects.get(thread=waiting, direction="outbound")
    assert (reply.text, reply.sender, reply.sent_by) == ("Olá, Maria!", "agent", agent)
    client.post(act, {"action": "note", "text": "VIP customer"})
    note = ThreadNote.objects.get(thread=waiting)
    assert note.text == "VIP customer" and note.author == agent
    client.post(act, {"action": "assign_me"})
    client.post(act, {"action": "close"})
    waiting.refresh_from_db()
    assert waiting.assigned_to == agent and waiting.status == "closed"
    assert not waiting.needs_human  # closing ends the handoff
    page = client.get(reverse("admin:inbox-thread", args=[waiting.pk])).content.decode()
    assert "VIP customer" in page and "Private note" in page and "Olá, Maria!" in page


@pytest.mark.django_db
def test_a_note_never_reaches_the_contact(tenant, member, waiting):
    client = logged_in(member(tenant, "agent"))
    client.post(
        reverse("admin:inbox-thread-act", args=[waiting.pk]), {"action": "note", "text": "n"}
    )
    assert not Message.objects.filter(thread=waiting, direction="outbound").exists()


@pytest.mark.django_db
def test_a_reply_outside_the_window_is_refused_before_it_is_typed(tenant, member, waiting):
    ChatThread.objects.filter(pk=waiting.pk).update(
        last_inbound_at=timezone.now() - timedelta(days=2)
    )
    Message.objects.filter(thread=waiting).update(created_at=timezone.now() - timedelta(days=2))
    client = logged_in(member(tenant, "agent"))
    page = client.get(reverse("admin:inbox-thread", args=[waiting.pk])).content.decode()
    assert "The 24-hour window is closed" in page
    response = client.post(
        reverse("admin:inbox-thread-act", args=[waiting.pk]),
        {"action": "reply", "text": "late"},
        follow=True,
    )
    assert "Not sent: the 24-hour window is closed" in response.content.decode()
    assert not Message.objects.filter(thread=waiting, direction="outbound").exists()


@pytest.mark.django_db
def test_assigning_someone_who_cannot_answer_is_refused(tenant, other_tenant, member, waiting):
    client = logged_in(member(tenant, "owner"))
    outsider = member(other_tenant, "agent")
    viewer = member(tenant, "viewer")
    act = reverse("admin:inbox-thread-act", args=[waiting.pk])
    for user in (outsider, viewer):
        client.post(act, {"action": "assign", "assignee": str(user.pk)})
        waiting.refresh_from_db()
        assert waiting.assigned_to is None
    for bad in ("abc", "999999", ""):
        assert client.post(act, {"action": "assign", "assignee": bad}).status_code == 302


@pytest.mark.django_db
def test_failures_are_explained_with_a_retry_where_it_helps(tenant, member, waiting):
    factories.MessageFactory(
        thread=waiting,
        direction="outbound",
        sender="agent",
        status="failed",
        error_code="63016",
        text="Late reply",
    )
    network = factories.MessageFactory(
        thread=waiting,
        direction="outbound",
        sender="agent",
        status="failed",
        error_code="network",
        text="Try me again",
    )
    client = logged_in(member(tenant, "agent"))
    page = client.get(reverse("admin:inbox-thread", args=[waiting.pk])).content.decode()
    assert "more than 24 hours passed" in page and "could not be reached" in page
    assert page.count('value="retry"') == 1
    client.post(
        reverse("admin:inbox-thread-act", args=[waiting.pk]),
        {"action": "retry", "message": str(network.pk)},
    )
    assert Message.objects.get(thread=waiting, status="queued").text == "Try me again"


@pytest.mark.django_db
def test_live_updates_answer_204_until_something_changes(tenant, member, waiting):
    client = logged_in(member(tenant, "agent"))
    page = client.get(reverse("admin:inbox-thread", args=[waiting.pk]))
    version = page.context["version"]
    updates = reverse("admin:inbox-thread-updates", args=[waiting.pk])
    assert client.get(updates, {"v": version}).status_code == 204
    message = Message.objects.get(thread=waiting)
    Message.objects.filter(pk=message.pk).update(status="read", updated_at=timezone.now())
    changed = client.get(updates, {"v": version})
    assert changed.status_code == 200 and 'id="timeline"' in changed.content.decode()


@pytest.mark.django_db
def test_media_is_served_from_our_copy_to_its_tenant_only(tenant, other_tenant, member, waiting):
    message = factories.MessageFactory(thread=waiting, kind="image", text="")
    attachment = MessageAttachment.objects.create(
        message=message,
        media_type="image",
        content_type="image/jpeg",
        url="https://api.twilio.test/secret-media",
        download_status="stored",
    )
    attachment.file.save("photo.jpg", ContentFile(b"\xff\xd8jpeg-bytes"), save=True)
    svg = MessageAttachment.objects.create(
        message=message,
        media_type="document",
        content_type="image/svg+xml",
        download_status="stored",
    )
    svg.file.save("x.svg", ContentFile(b"<svg/>"), save=True)
    client = logged_in(member(tenant, "viewer"))
    page = client.get(reverse("admin:inbox-thread", args=[waiting.pk])).content.decode()
    assert "secret-media" not in page
    url = reverse("admin:inbox-media", args=[attachment.pk])
    assert url in page
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == b"\xff\xd8jpeg-bytes"
    download = client.get(reverse("admin:inbox-media", args=[svg.pk]))
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"].startswith("attachment")
    stranger = logged_in(member(other_tenant, "owner"))
    assert stranger.get(url).status_code == 404


@pytest.mark.django_db
def test_a_location_shows_its_name_and_a_map_link(tenant, member, waiting):
    factories.MessageFactory(
        thread=waiting,
        kind="location",
        text="",
        private_data={
            "location": {
                "latitude": -23.5,
                "longitude": -46.6,
                "name": "Academia Centro",
                "address": "Rua A, 1",
            }
        },
    )
    page = logged_in(member(tenant, "viewer")).get(reverse("admin:inbox-thread", args=[waiting.pk]))
    html = page.content.decode()
    assert "Academia Centro" in html and "openstreetmap.org/?mlat=-23.5" in html


@pytest.mark.django_db
def test_new_kinds_are_named_in_the_timeline(tenant, member, waiting):
    # given: a contact card, a reaction, a flow reply, an unsupported message, an echo
    def message(kind, **fields):
        return factories.MessageFactory(thread=waiting, kind=kind, text="", **fields)

    message("contacts", private_data={"contacts": [{"name": {"formatted_name": "Diana D"}}]})
    message("reaction", private_data={"reaction": {"emoji": "👍"}})
    message("flow_reply", private_data={"flow_reply": {"name": "flow", "response": {"a": 1}}})
    message("unsupported", metadata={"provider_type": "poll"})
    factories.MessageFactory(
        thread=waiting, direction="outbound", sender="business", status="sent", text="On my way"
    )

    # when
    page = logged_in(member(tenant, "viewer")).get(reverse("admin:inbox-thread", args=[waiting.pk]))

    # then
    html = page.content.decode()
    assert "👤 Diana D" in html
    assert "Reacted 👍" in html
    assert "📝 Form answers" in html
    assert "does not show yet (poll)" in html
    assert "WhatsApp Business app" in html and "On my way" in html


@pytest.mark.django_db
def test_answers_typed_into_flows_are_shown_only_to_who_may_export(tenant, member, waiting):
    from flows.models import Flow, FlowSession

    flow = Flow.objects.create(
        tenant=tenant, channel=waiting.channel, flow_id="f", version=1, name="Intake", definition={}
    )
    session = FlowSession.objects.create(
        tenant=tenant,
        thread=waiting,
        flow=flow,
        status="completed",
        variables={"cpf": "123.456.789-00"},
    )
    thread_page = reverse("admin:inbox-thread", args=[waiting.pk])
    session_page = reverse("admin:flows_flowsession_change", args=[session.pk])
    for role, shown in (("owner", True), ("agent", False), ("viewer", False)):
        client = logged_in(member(tenant, role))
        for url in (thread_page, session_page):
            html = client.get(url).content.decode()
            assert ("123.456.789-00" in html) is shown, (role, url)
            assert "Intake" in html
