"""Contacts, threads, messages and stats over the API: decrypted for authorised clients,
scoped to the tenant, with query counts that do not grow with the rows."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conversations.models import ChatThread, Contact, Message, MessageAttachment
from conversations.services.stats import tenant_stats
from flows.models import Flow, FlowSession, SessionStatus
from tests import factories
from tests.api_helpers import error_of, key_client


@pytest.fixture
def channel(tenant):
    return factories.TwilioChannelFactory(tenant=tenant)


@pytest.fixture
def client(tenant):
    return key_client(tenant)


@pytest.fixture
def foreign_thread(other_tenant):
    thread = factories.ThreadFactory(channel=factories.TwilioChannelFactory(tenant=other_tenant))
    factories.MessageFactory(thread=thread, text="secret of another tenant")
    return thread


def _ids(response) -> set[str]:
    return {row["id"] for row in response.json()["results"]}


# --- contacts --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_contacts_are_decrypted_scoped_and_filterable(client, tenant, channel, foreign_thread):
    # given contacts of this tenant (one opted out) and one of another tenant
    mine = factories.ContactFactory(tenant=tenant, name="Maria", phone="+5511911112222")
    opted_out = factories.ContactFactory(tenant=tenant, opted_out_at=timezone.now())
    url = reverse("contact-list", kwargs={"tenant": tenant.pk})
    # when listed
    response = client.get(url)
    # then only this tenant's, with name and phone in clear
    assert _ids(response) == {str(mine.pk), str(opted_out.pk)}
    row = next(r for r in response.json()["results"] if r["id"] == str(mine.pk))
    assert row["name"] == "Maria" and row["phone"] == "+5511911112222"
    assert set(row) == {
        "id",
        "external_id",
        "name",
        "phone",
        "wa_user_id",
        "ig_user_id",
        "opted_in_at",
        "opted_out_at",
        "erased_at",
        "created_at",
    }
    assert _ids(client.get(url, {"opted_out": "true"})) == {str(opted_out.pk)}
    assert _ids(client.get(url, {"opted_out": "false"})) == {str(mine.pk)}
    assert _ids(client.get(url, {"phone": "+55 11 91111-2222"})) == {str(mine.pk)}
    foreign_phone = foreign_thread.contact.phone
    assert _ids(client.get(url, {"phone": foreign_phone})) == set()
    detail = reverse("contact-detail", kwargs={"tenant": tenant.pk, "contact": mine.pk})
    assert client.get(detail).json()["name"] == "Maria"
    foreign = reverse(
        "contact-detail", kwargs={"tenant": tenant.pk, "contact": foreign_thread.contact_id}
    )
    assert client.get(foreign).status_code == 404


@pytest.mark.django_db
def test_contact_list_query_budget_is_flat(client, tenant, django_assert_max_num_queries):
    url = reverse("contact-list", kwargs={"tenant": tenant.pk})
    for rows in (3, 30):
        factories.ContactFactory.create_batch(
            rows - Contact.objects.filter(tenant=tenant).count(), tenant=tenant
        )
        with django_assert_max_num_queries(4):
            assert client.get(url).json()["count"] == rows


@pytest.mark.django_db
def test_contact_export_and_erase(client, tenant, channel):
    thread = factories.ThreadFactory(channel=channel)
    factories.MessageFactory(thread=thread, text="my address is 1 Main St")
    contact = thread.contact
    export_url = reverse("contact-export", kwargs={"tenant": tenant.pk, "contact": contact.pk})
    exported = client.get(export_url)
    assert exported.status_code == 200
    assert "my address is 1 Main St" in exported.content.decode()

    erase_url = reverse("contact-erase", kwargs={"tenant": tenant.pk, "contact": contact.pk})
    dry = client.post(erase_url, {"dry_run": True}, format="json")
    assert dry.status_code == 200 and dry.json()["dry_run"] is True
    assert Message.objects.get(thread=thread).text == "my address is 1 Main St"
    erased = client.post(erase_url, {}, format="json")
    assert erased.status_code == 200
    assert erased.json()["messages_redacted"] == 1
    assert Message.all_objects.get(thread=thread).text == ""
    again = client.post(erase_url, {}, format="json").json()
    assert again["messages_redacted"] == 0


# --- threads -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_threads_list_filters_and_isolation(client, tenant, channel, foreign_thread):
    now = timezone.now()
    waiting = factories.ThreadFactory(channel=channel, needs_human=True, last_activity_at=now)
    closed = factories.ThreadFactory(
        channel=channel, status="closed", last_activity_at=now - timedelta(hours=1)
    )
    other_channel = factories.CloudChannelFactory(tenant=tenant)
    elsewhere = factories.ThreadFactory(channel=other_channel)
    url = reverse("thread-list", kwargs={"tenant": tenant.pk})

    everything = client.get(url)
    assert _ids(everything) == {str(waiting.pk), str(closed.pk), str(elsewhere.pk)}
    row = next(r for r in everything.json()["results"] if r["id"] == str(waiting.pk))
    assert row["contact"] == {
        "id": str(waiting.contact.pk),
        "name": waiting.contact.name,
        "phone": waiting.contact.phone,
        "wa_user_id": "",
        "ig_user_id": "",
    }
    assert _ids(client.get(url, {"needs_human": "true"})) == {str(waiting.pk)}
    assert _ids(client.get(url, {"status": "closed"})) == {str(closed.pk)}
    assert _ids(client.get(url, {"channel": str(other_channel.pk)})) == {str(elsewhere.pk)}
    ChatThread.objects.filter(pk=closed.pk).update(updated_at=now - timedelta(days=2))
    ChatThread.objects.filter(pk__in=[waiting.pk, elsewhere.pk]).update(updated_at=now)
    since = (now - timedelta(days=1)).isoformat()
    assert _ids(client.get(url, {"updated_since": since})) == {str(waiting.pk), str(elsewhere.pk)}
    bad = client.get(url, {"status": "nope", "updated_since": "yesterday"})
    assert bad.status_code == 400
    assert {d["path"] for d in error_of(bad)["details"]} == {"status", "updated_since"}


@pytest.mark.django_db
def test_thread_list_query_budget_is_flat(client, tenant, channel, django_assert_max_num_queries):
    url = reverse("thread-list", kwargs={"tenant": tenant.pk})
    for rows in (3, 30):
        factories.ThreadFactory.create_batch(
            rows - ChatThread.objects.filter(tenant=tenant).count(), channel=channel
        )
        with django_assert_max_num_queries(4):
            assert client.get(url).json()["count"] == rows


@pytest.mark.django_db
def test_patch_thread_needs_human_false_resumes_automation(client, tenant, channel):
    # given a thread handed to a human, with a waiting session
    thread = factories.ThreadFactory(channel=channel)
    url = reverse("thread-detail", kwargs={"tenant": tenant.pk, "thread": thread.pk})
    flow = Flow.objects.create(
        tenant=tenant, channel=channel, flow_id="f", version=1, name="F", definition={}
    )
    session = FlowSession.objects.create(
        tenant=tenant, thread=thread, flow=flow, status=SessionStatus.WAITING
    )
    # when an agent takes over
    taken = client.patch(url, {"needs_human": True}, format="json")
    # then automation pauses and the waiting session is interrupted
    assert taken.status_code == 200
    assert taken.json()["needs_human"] is True
    session.refresh_from_db()
    assert session.status == SessionStatus.INTERRUPTED
    # when the agent hands back and closes
    resumed = client.patch(url, {"needs_human": False, "status": "closed"}, format="json")
    assert resumed.status_code == 200
    thread.refresh_from_db()
    assert thread.needs_human is False and thread.handoff_reason == "" and thread.status == "closed"
    assert client.patch(url, {"status": "bogus"}, format="json").status_code == 400
    assert client.patch(url, {}, format="json").status_code == 400


# --- messages -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_messages_are_cursor_paginated_newest_first_with_attachments(
    client, tenant, channel, django_assert_max_num_queries
):
    thread = factories.ThreadFactory(channel=channel)
    url = reverse("thread-messages", kwargs={"tenant": tenant.pk, "thread": thread.pk})
    base = timezone.now() - timedelta(hours=1)
    for rows in (3, 30):
        existing = Message.objects.filter(thread=thread).count()
        for index in range(existing, rows):
            message = factories.MessageFactory(
                thread=thread, text=f"m{index}", created_at=base + timedelta(seconds=index)
            )
            MessageAttachment.objects.create(
                message=message, media_type="image", content_type="image/jpeg", url=""
            )
        with django_assert_max_num_queries(5):
            response = client.get(url, {"page_size": 50})
        body = response.json()
        assert set(body) == {"next", "previous", "results"}
        assert [row["text"] for row in body["results"]] == [f"m{i}" for i in reversed(range(rows))]
        assert body["results"][0]["attachments"][0]["media_type"] == "image"
    # the cursor walks back in time without repeats
    first = client.get(url, {"page_size": 10}).json()
    second = client.get(first["next"]).json()
    texts = [r["text"] for r in first["results"] + second["results"]]
    assert texts == [f"m{i}" for i in range(29, 9, -1)]
    assert [r["text"] for r in client.get(url, {"direction": "outbound"}).json()["results"]] == []


@pytest.mark.django_db
def test_messages_of_another_tenants_thread_are_404(client, tenant, foreign_thread):
    url = reverse("thread-messages", kwargs={"tenant": tenant.pk, "thread": foreign_thread.pk})
    assert client.get(url).status_code == 404
    assert client.post(url, {"text": "hi"}, format="json").status_code == 404
    assert "secret of another tenant" not in client.get(url).content.decode()


@pytest.mark.django_db
def test_agent_message_is_queued_201(staff_client, staff_user, tenant, channel):
    thread = factories.ThreadFactory(channel=channel, last_inbound_at=timezone.now())
    url = reverse("thread-messages", kwargs={"tenant": tenant.pk, "thread": thread.pk})
    response = staff_client.post(url, {"text": "Hello from the team"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["sender"] == "agent"
    assert body["text"] == "Hello from the team" and body["direction"] == "outbound"
    assert Message.objects.get(pk=body["id"]).sent_by == staff_user


@pytest.mark.django_db
def test_agent_message_outside_the_window_is_409_and_stores_nothing(client, tenant, channel):
    thread = factories.ThreadFactory(
        channel=channel, last_inbound_at=timezone.now() - timedelta(hours=25)
    )
    url = reverse("thread-messages", kwargs={"tenant": tenant.pk, "thread": thread.pk})
    response = client.post(url, {"text": "Are you there?"}, format="json")
    assert response.status_code == 409
    error = error_of(response, extra=("templates",))
    assert error["code"] == "outside_window" and "24-hour" in error["message"]
    assert error["templates"] == []  # the channel has none
    assert "Are you there?" not in response.content.decode()
    assert not Message.objects.filter(thread=thread).exists()
    assert client.post(url, {"text": ""}, format="json").status_code == 400


@pytest.mark.django_db
def test_agent_message_to_an_erased_contact_is_409_and_stores_nothing(client, tenant, channel):
    # given: a contact erased right after writing (the 24-hour window would still be open)
    thread = factories.ThreadFactory(channel=channel, last_inbound_at=timezone.now())
    erase = reverse("contact-erase", kwargs={"tenant": tenant.pk, "contact": thread.contact_id})
    assert client.post(erase).status_code == 200

    # when
    url = reverse("thread-messages", kwargs={"tenant": tenant.pk, "thread": thread.pk})
    response = client.post(url, {"text": "Hello?"}, format="json")

    # then
    assert response.status_code == 409
    assert error_of(response)["code"] == "contact_erased"
    assert not Message.objects.filter(thread=thread, direction="outbound").exists()


# --- stats ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_stats_against_known_data(client, tenant, channel, other_tenant):
    # given a fixed "now" and activity on two days, plus noise in another tenant
    now = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    thread = factories.ThreadFactory(channel=channel, needs_human=True)
    factories.ThreadFactory(channel=channel)
    factories.ThreadFactory(channel=channel, status="closed", needs_human=True)
    day1 = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)
    day2 = datetime(2026, 3, 10, 0, 30, tzinfo=UTC)
    for created, direction in [(day1, "inbound"), (day1, "outbound"), (day1, "outbound")] + [
        (day2, "inbound")
    ] * 3:
        factories.MessageFactory(thread=thread, direction=direction, created_at=created)
    factories.MessageFactory(thread=thread, created_at=datetime(2026, 3, 1, tzinfo=UTC))  # old
    foreign = factories.ThreadFactory(channel=factories.TwilioChannelFactory(tenant=other_tenant))
    factories.MessageFactory(thread=foreign, created_at=day2)
    flow_v1 = Flow.objects.create(
        tenant=tenant, channel=channel, flow_id="welcome", version=1, name="W", definition={}
    )
    flow_v2 = Flow.objects.create(
        tenant=tenant, channel=channel, flow_id="welcome", version=2, name="W", definition={}
    )
    for flow, status, handed_off in [
        (flow_v1, SessionStatus.COMPLETED, False),
        (flow_v2, SessionStatus.COMPLETED, True),
        (flow_v2, SessionStatus.EXPIRED, False),
        (flow_v2, SessionStatus.FAILED, False),
    ]:
        FlowSession.objects.create(
            tenant=tenant,
            thread=thread,
            flow=flow,
            status=status,
            handed_off=handed_off,
            created_at=day2,
        )

    # when
    stats = tenant_stats(tenant=tenant, days=2, now=now)

    # then
    assert [(d["date"].isoformat(), d["inbound"], d["outbound"]) for d in stats["messages"]] == [
        ("2026-03-09", 1, 2),
        ("2026-03-10", 3, 0),
    ]
    assert stats["threads"] == {"open": 2, "needs_human": 1, "oldest_waiting_since": None}
    # the handed-off session (status completed, handed_off) counts as handed off only
    assert stats["flows"] == [
        {
            "flow_id": "welcome",
            "name": "W",
            "tenant_id": tenant.pk,
            "tenant_name": tenant.name,
            "started": 4,
            "completed": 1,
            "handed_off": 1,
            "expired": 1,
            "failed": 1,
            "interrupted": 0,
            "running": 0,
            "ai_calls": 0,
            "ai_fallbacks": 0,
            "completion_rate": 0.25,
        }
    ]
    assert tenant_stats(tenant=tenant, days=1, now=now)["messages"] == [
        {"date": now.date(), "inbound": 3, "outbound": 0}
    ]


@pytest.mark.django_db
def test_stats_endpoint_days_parameter(client, tenant, django_assert_max_num_queries):
    url = reverse("stats", kwargs={"tenant": tenant.pk})
    with django_assert_max_num_queries(9):
        response = client.get(url)
    assert response.status_code == 200
    assert len(response.json()["messages"]) == 30
    assert len(client.get(url, {"days": 7}).json()["messages"]) == 7
    for bad in ("0", "366", "abc", "-1"):
        response = client.get(url, {"days": bad})
        assert response.status_code == 400, bad
        assert error_of(response)["details"][0]["path"] == "days"
