"""The inbox stays a fixed number of queries per page with 10,000 threads and a 5,000-message
conversation (keyset paging; nothing per row)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations.models import ChatThread, Contact, Message
from tests import factories

LIST_QUERIES = 14  # session, user, roles, threads page, last messages, channels, version, ...
CONVERSATION_QUERIES = 18


def _threads(tenant, channel, count, first=0):
    now = timezone.now()
    contacts = Contact.objects.bulk_create(
        [
            Contact(tenant=tenant, name=f"Person {n}", phone_lookup=f"lookup-{n}")
            for n in range(first, first + count)
        ]
    )
    threads = ChatThread.objects.bulk_create(
        [
            ChatThread(
                tenant=tenant,
                contact=contact,
                channel=channel,
                needs_human=n % 7 == 0,
                last_activity_at=now - timedelta(seconds=n),
            )
            for n, contact in enumerate(contacts)
        ]
    )
    Message.objects.bulk_create(
        [
            Message(
                tenant=tenant,
                thread=thread,
                channel=channel,
                direction="inbound",
                sender="contact",
                status="received",
                text="hello",
                created_at=now - timedelta(seconds=n),
            )
            for n, thread in enumerate(threads)
        ]
    )
    return threads


@pytest.mark.django_db
def test_the_list_costs_the_same_with_10_and_10000_threads(
    tenant, member, django_assert_max_num_queries
):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    client = Client()
    client.force_login(member(tenant, "agent"))
    _threads(tenant, channel, 10)
    with django_assert_max_num_queries(LIST_QUERIES):
        small = client.get("/admin/inbox/")
    _threads(tenant, channel, 10_000 - 10, first=10)
    with django_assert_max_num_queries(LIST_QUERIES):
        large = client.get("/admin/inbox/")
    assert len(small.context["rows"]) == 10
    rows = large.context["rows"]
    assert len(rows) == 50 and all(row["thread"].needs_human for row in rows)
    # and the last page is as cheap as the first
    cursor = large.context["page"].next_cursor
    for _ in range(3):
        with django_assert_max_num_queries(LIST_QUERIES):
            page = client.get("/admin/inbox/", {"after": cursor})
        cursor = page.context["page"].next_cursor
    with django_assert_max_num_queries(LIST_QUERIES):
        found = client.get("/admin/inbox/", {"q": "person 9999"})
    assert [row["name"] for row in found.context["rows"]] == ["Person 9999"]


@pytest.mark.django_db
def test_a_5000_message_conversation_costs_a_fixed_number_of_queries(
    tenant, member, django_assert_max_num_queries
):
    thread = factories.ThreadFactory(channel=factories.TwilioChannelFactory(tenant=tenant))
    start = timezone.now() - timedelta(days=3)
    Message.objects.bulk_create(
        [
            Message(
                tenant=tenant,
                thread=thread,
                channel=thread.channel,
                direction="inbound" if n % 2 else "outbound",
                sender="contact" if n % 2 else "agent",
                status="received" if n % 2 else "read",
                text=f"message {n}",
                created_at=start + timedelta(seconds=n * 30),
            )
            for n in range(5000)
        ]
    )
    client = Client()
    client.force_login(member(tenant, "agent"))
    url = reverse("admin:inbox-thread", args=[thread.pk])
    with django_assert_max_num_queries(CONVERSATION_QUERIES):
        page = client.get(url)
    assert "message 4999" in page.content.decode()
    older = page.context["older_than"]
    with django_assert_max_num_queries(CONVERSATION_QUERIES):
        client.get(url, {"before": str(older)})
    updates = reverse("admin:inbox-thread-updates", args=[thread.pk])
    with django_assert_max_num_queries(8):
        assert client.get(updates, {"v": page.context["version"]}).status_code == 204
