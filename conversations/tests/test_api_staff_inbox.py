"""The staff inbox in the admin: conversation decrypted for staff, replies through the
outbound service, handoff actions through thread_update, long conversations paged."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conversations.inbox import CONVERSATION_PAGE
from conversations.models import ChatThread, Message, MessageAttachment
from flows.models import Flow, FlowSession, SessionStatus
from tests import factories


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def thread(tenant):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    return factories.ThreadFactory(
        channel=channel, needs_human=True, handoff_reason="asked", last_inbound_at=timezone.now()
    )


def _url(thread):
    return reverse("admin:inbox-thread", args=[thread.pk])


def _act(thread):
    return reverse("admin:inbox-thread-act", args=[thread.pk])


@pytest.mark.django_db
def test_the_threads_change_page_leads_to_the_inbox(admin_client, thread):
    old = reverse("admin:conversations_chatthread_change", args=[thread.pk])
    response = admin_client.get(old)
    assert response.status_code == 302 and response.url == _url(thread)


@pytest.mark.django_db
def test_thread_page_shows_the_conversation_attachments_and_sessions(admin_client, thread):
    message = factories.MessageFactory(thread=thread, text="I want to book a class")
    MessageAttachment.objects.create(
        message=message, media_type="image", content_type="image/png", url="https://x.test/a"
    )
    flow = Flow.objects.create(
        tenant=thread.tenant,
        channel=thread.channel,
        flow_id="welcome",
        version=3,
        name="W",
        definition={},
    )
    FlowSession.objects.create(
        tenant=thread.tenant,
        thread=thread,
        flow=flow,
        status=SessionStatus.WAITING,
        current_node="ask_day",
    )
    page = admin_client.get(_url(thread))
    assert page.status_code == 200
    html = page.content.decode()
    assert "I want to book a class" in html
    assert "being downloaded" in html  # not stored yet: no provider link, ever
    assert "https://x.test/a" not in html
    assert "W</strong> v3" in html and "ask_day" in html
    # the phone is masked as everywhere in the admin: the last four digits only
    assert thread.contact.phone not in html
    assert thread.contact.phone[-4:] in html
    assert "Resume automation" in html


@pytest.mark.django_db
def test_reply_box_sends_as_agent(admin_client, staff_user, thread):
    response = admin_client.post(_act(thread), {"action": "reply", "text": "Hi, this is Ana"})
    assert response.status_code == 302
    message = Message.objects.get(thread=thread, direction="outbound")
    assert (message.text, message.sender, message.status) == ("Hi, this is Ana", "agent", "queued")
    assert message.sent_by == staff_user


@pytest.mark.django_db
def test_reply_outside_the_window_is_an_admin_error(admin_client, thread):
    ChatThread.objects.filter(pk=thread.pk).update(
        last_inbound_at=timezone.now() - timedelta(days=2)
    )
    response = admin_client.post(_act(thread), {"action": "reply", "text": "late"}, follow=True)
    assert "24-hour window is closed" in response.content.decode()
    assert not Message.objects.filter(thread=thread, direction="outbound").exists()


@pytest.mark.django_db
def test_resume_automation_and_close(admin_client, thread):
    admin_client.post(_act(thread), {"action": "resume"})
    thread.refresh_from_db()
    assert thread.needs_human is False and thread.handoff_reason == ""
    admin_client.post(_act(thread), {"action": "close"})
    thread.refresh_from_db()
    assert thread.status == "closed"


@pytest.mark.django_db
def test_thread_list_filters_with_a_flat_query_budget(
    admin_client, tenant, thread, django_assert_max_num_queries
):
    url = reverse("admin:conversations_chatthread_changelist")
    channel = thread.channel
    for rows in (3, 30):
        factories.ThreadFactory.create_batch(rows - ChatThread.objects.count(), channel=channel)
        with django_assert_max_num_queries(12):
            page = admin_client.get(url, {"needs_human__exact": "1", "status__exact": "open"})
        assert page.status_code == 200
    assert page.context["cl"].result_count == 1


@pytest.mark.django_db
def test_non_staff_cannot_post_replies(client, django_user_model, thread):
    user = django_user_model.objects.create_user(username="u", password="pw-123456789")
    client.force_login(user)
    response = client.post(_act(thread), {"action": "reply", "text": "x"})
    assert response.status_code == 302 and "/admin/login/" in response.url
    assert not Message.objects.filter(thread=thread, direction="outbound").exists()


def _conversation(thread, count):
    start = timezone.now() - timedelta(hours=1)
    return Message.objects.bulk_create(
        [
            Message(
                tenant=thread.tenant,
                thread=thread,
                channel=thread.channel,
                direction="inbound",
                sender="contact",
                status="received",
                text=f"message number {n:03d}",
                created_at=start + timedelta(seconds=n),
            )
            for n in range(count)
        ]
    )


@pytest.mark.django_db
def test_a_long_conversation_pages_back_to_its_first_message(
    admin_client, thread, django_assert_max_num_queries
):
    # given: 5 more messages than a page
    total = CONVERSATION_PAGE + 5
    _conversation(thread, total)

    # when: the thread page, then its "older messages" link
    latest = admin_client.get(_url(thread)).content.decode()
    older_than = latest.split('href="?before=')[1].split('"')[0]
    with django_assert_max_num_queries(20):
        older = admin_client.get(_url(thread), {"before": older_than}).content.decode()

    # then: the latest page, then the 5 before it, oldest first on each page
    newest = f"message number {total - 1:03d}"
    assert newest in latest and "message number 005" in latest
    assert "message number 004" not in latest
    assert latest.index("message number 005") < latest.index(newest)
    assert [f"message number {n:03d}" in older for n in range(6)] == [True] * 5 + [False]
    assert "?before=" not in older  # nothing older
    assert "Latest messages" in older


@pytest.mark.django_db
def test_a_paging_position_from_another_thread_or_malformed_shows_the_latest(
    admin_client, thread, tenant
):
    # given
    _conversation(thread, 3)
    elsewhere = factories.MessageFactory(
        thread=factories.ThreadFactory(channel=factories.TwilioChannelFactory(tenant=tenant))
    )

    for before in (str(elsewhere.pk), "not-a-uuid"):
        # when
        page = admin_client.get(_url(thread), {"before": before}, follow=True)

        # then: a clear warning, the latest messages, and nothing of the other thread
        html = page.content.decode()
        assert page.status_code == 200
        assert "not in this thread" in html
        assert "message number 002" in html
        assert elsewhere.text not in html


@pytest.mark.django_db
def test_a_viewer_of_the_tenant_cannot_write(client, member, thread):
    # given: a member who may only view the tenant's conversations
    viewer = member(thread.tenant, "viewer")
    client.force_login(viewer)
    status_before = thread.status

    # when: the page, a reply and a thread action
    page = client.get(_url(thread))
    reply = client.post(_act(thread), {"action": "reply", "text": "hello"})
    action = client.post(_act(thread), {"action": "close"})

    # then: the conversation is shown without the forms, and nothing was written
    assert page.status_code == 200 and "Send reply" not in page.content.decode()
    assert reply.status_code == action.status_code == 403
    assert not Message.objects.filter(thread=thread, direction="outbound").exists()
    thread.refresh_from_db()
    assert thread.status == status_before


@pytest.mark.django_db
def test_the_message_list_finds_a_pasted_whatsapp_id(admin_client, thread):
    wamid = "wamid.HBgNNTUxMTk3Nzc3NjY2NhUCABIYFDNBMEQ2OTk5RjdCNzQ3QjZFQzQ1AA=="
    message = factories.MessageFactory(thread=thread, provider_message_id=wamid)
    factories.MessageFactory(thread=thread, provider_message_id="SMother")
    page = admin_client.get(reverse("admin:conversations_message_changelist"), {"q": wamid})
    assert page.status_code == 200
    assert [row.pk for row in page.context["cl"].result_list] == [message.pk]
