"""The contact page in the admin: the header, every conversation, the history of flow runs
and consent events, the GDPR export and erasure, and who may do what there."""

import json
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations.admin import mask_phone
from conversations.models import Contact
from conversations.selectors import TimelineCursor, contact_threads, contact_timeline
from flows.models import Flow, FlowSession, SessionStatus
from tests import factories

PHONE = "+5511977776666"
NAME = "Maria Silva"
ANSWER = "maria.silva@example.org"


def _page(contact) -> str:
    return reverse("admin:conversations_contact_change", args=[contact.pk])


def _export(contact) -> str:
    return reverse("admin:conversations_contact_export", args=[contact.pk])


def _erase(contact) -> str:
    return reverse("admin:conversations_contact_erase", args=[contact.pk])


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def story(tenant):
    """Maria, opted in, with a conversation on two channels and two flow runs."""
    contact = factories.ContactFactory(
        tenant=tenant,
        phone=PHONE,
        name=NAME,
        opted_in_at=timezone.now() - timedelta(days=3),
        opt_in_source="keyword",
    )
    twilio = factories.TwilioChannelFactory(tenant=tenant)
    cloud = factories.CloudChannelFactory(tenant=tenant)
    first = factories.ThreadFactory(channel=twilio, contact=contact, needs_human=True)
    second = factories.ThreadFactory(channel=cloud, contact=contact)
    for _ in range(3):
        factories.MessageFactory(thread=first)
    factories.MessageFactory(thread=second)
    flow = Flow.objects.create(
        tenant=tenant,
        channel=twilio,
        flow_id="welcome",
        version=2,
        name="Welcome tour",
        definition={"flow_id": "welcome", "nodes": []},
    )
    done = FlowSession.objects.create(
        tenant=tenant,
        thread=first,
        flow=flow,
        status=SessionStatus.COMPLETED,
        current_node="bye",
        variables={"email": ANSWER, "visits": 3},
        handed_off=True,
        ended_at=timezone.now(),
    )
    waiting = FlowSession.objects.create(
        tenant=tenant,
        thread=first,
        flow=flow,
        status=SessionStatus.WAITING,
        current_node="ask_goal",
        variables={},
    )
    return {"contact": contact, "threads": [first, second], "sessions": [done, waiting]}


# --- __str__ ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_contact_reads_as_its_name_and_the_phones_last_digits(tenant):
    contact = factories.ContactFactory(tenant=tenant, phone=PHONE, name=NAME)
    assert str(contact) == "Maria Silva · whatsapp …6666"
    assert str(factories.ContactFactory(tenant=tenant, phone=PHONE[:-1] + "5", name="")) == (
        "whatsapp …6665"
    )


@pytest.mark.django_db
def test_a_contact_without_name_or_phone_reads_as_its_short_id(tenant):
    contact = factories.ContactFactory(tenant=tenant, phone="", name="", phone_lookup=None)
    assert str(contact) == f"Contact {str(contact.pk)[:8]}"
    contact.erased_at = timezone.now()
    assert str(contact) == f"Erased contact {str(contact.pk)[:8]}"


@pytest.mark.django_db
def test_str_never_queries_even_with_deferred_fields(tenant, django_assert_num_queries):
    factories.ContactFactory(tenant=tenant, phone=PHONE, name=NAME)
    contact = Contact.objects.only("id").get()
    with django_assert_num_queries(0):
        assert str(contact) == f"Contact {str(contact.pk)[:8]}"


# --- the page -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_owner_sees_who_the_contact_is_every_conversation_and_the_flow_runs(
    story, tenant, member
):
    # given
    contact = story["contact"]
    first, second = story["threads"]
    # when
    response = _client(member(tenant, "owner")).get(_page(contact))
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert NAME in html
    assert mask_phone(PHONE) in html
    assert PHONE not in html
    assert contact.external_id in html
    assert "Opted in on" in html and "(keyword)" in html
    for thread in (first, second):
        assert reverse("admin:inbox-thread", args=[thread.pk]) in html
        assert str(thread.channel) in html
    rows = {thread.pk: thread.message_count for thread in response.context["contact_threads"]}
    assert rows == {first.pk: 3, second.pk: 1}
    assert "Welcome tour" in html and "welcome v2" in html
    assert "Completed" in html and "handed off" in html and "Waiting" in html
    assert "<code>ask_goal</code>" in html
    # the owner reads the answers as pairs, never as a Python dict
    assert f"<dt>email</dt><dd>{ANSWER}</dd>" in html
    assert "<dt>visits</dt><dd>3</dd>" in html
    assert "{&#x27;email&#x27;" not in html and "{'email'" not in html
    assert 'id="contact-export"' in html and 'id="contact-erase"' in html


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["agent", "viewer"])
def test_agents_and_viewers_see_the_page_without_answers_or_buttons(story, tenant, member, role):
    contact = story["contact"]
    client = _client(member(tenant, role))
    html = client.get(_page(contact)).content.decode()
    assert NAME in html and "Welcome tour" in html
    assert ANSWER not in html
    assert 'id="contact-export"' not in html and 'id="contact-erase"' not in html
    assert client.post(_export(contact)).status_code == 403
    assert client.get(_export(contact)).status_code == 403
    assert client.get(_erase(contact)).status_code == 403
    assert client.post(_erase(contact), {"confirm": "ERASE"}).status_code == 403
    contact.refresh_from_db()
    assert contact.erased_at is None and contact.phone == PHONE


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "agent", "viewer"])
def test_another_tenants_contact_is_a_404_everywhere(story, other_tenant, member, role):
    contact = story["contact"]
    client = _client(member(other_tenant, role))
    assert client.get(_page(contact)).status_code == 404
    assert client.post(_export(contact)).status_code == 404
    assert client.get(_erase(contact)).status_code == 404
    assert client.post(_erase(contact), {"confirm": "ERASE"}).status_code == 404
    contact.refresh_from_db()
    assert contact.erased_at is None


# --- the timeline -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_history_merges_flow_runs_and_events_newest_first(story):
    contact = story["contact"]
    contact.opted_out_at = timezone.now() + timedelta(minutes=1)
    threads = contact_threads(contact=contact)
    events, older = contact_timeline(contact=contact, threads=threads)
    kinds = [event.kind for event in events]
    assert kinds[0] == "opted_out"
    assert kinds.count("flow_run") == 2 and kinds.count("thread_opened") == 2
    assert kinds[-1] == "opted_in"  # three days ago
    assert [event.at for event in events] == sorted((e.at for e in events), reverse=True)
    assert older is None


@pytest.mark.django_db
def test_the_history_pages_back_by_keyset_without_gaps_or_repeats(
    story, tenant, django_assert_max_num_queries
):
    # given: many flow runs, some at the same instant
    contact = story["contact"]
    thread = story["threads"][0]
    flow = story["sessions"][0].flow
    base = timezone.now() - timedelta(days=1)
    for number in range(230):
        FlowSession.objects.create(
            tenant=tenant,
            thread=thread,
            flow=flow,
            status=SessionStatus.COMPLETED,
            variables={},
            created_at=base + timedelta(seconds=number // 3),
        )
    threads = contact_threads(contact=contact)
    # when: paging back to the end
    seen, before, pages = [], None, 0
    while True:
        with django_assert_max_num_queries(1):
            events, before = contact_timeline(contact=contact, threads=threads, before=before)
        pages += 1
        seen += [(event.kind, event.key) for event in events]
        assert len(events) <= 100
        if before is None:
            break
        before = TimelineCursor.parse(str(before))
    # then: every event once, in order
    everything, _ = contact_timeline(contact=contact, threads=threads, limit=10_000)
    assert seen == [(event.kind, event.key) for event in everything]
    assert len(seen) == 232 + 2 + 1 and pages == 3


@pytest.mark.django_db
def test_the_page_links_to_older_history_and_survives_a_bad_cursor(story, tenant, member):
    contact = story["contact"]
    flow = story["sessions"][0].flow
    for _ in range(120):
        FlowSession.objects.create(
            tenant=tenant,
            thread=story["threads"][0],
            flow=flow,
            status=SessionStatus.EXPIRED,
            variables={},
        )
    client = _client(member(tenant, "viewer"))
    html = client.get(_page(contact)).content.decode()
    link = re.search(r'href="\?before=([^"]+)" id="timeline-older"', html)
    assert link
    older = client.get(_page(contact) + "?before=" + link.group(1))
    assert older.status_code == 200 and older.context["timeline_paged"]
    assert len(older.context["timeline"]) == 122 + 2 + 1 - 100
    for bad in ("nonsense", "2026-01-01T00:00:00~6~x", "2026-01-01T00:00:00~6~" + str(flow.pk)):
        response = client.get(_page(contact), {"before": bad})
        assert response.status_code == 200
        assert "showing the latest" in [str(m) for m in get_messages(response.wsgi_request)][0]


# --- export -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["owner", "superuser"])
def test_export_downloads_the_apis_json_as_a_file(story, tenant, member, kind, staff_user):
    contact = story["contact"]
    user = member(tenant, "owner") if kind == "owner" else staff_user
    response = _client(user).post(_export(contact))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith(
        f'attachment; filename="contact-{contact.pk}-'
    )
    assert "no-store" in response["Cache-Control"]  # the admin never caches
    data = json.loads(response.content)
    assert data["contact"]["phone"] == PHONE and data["contact"]["name"] == NAME
    assert len(data["threads"]) == 2
    # the same document as the API's
    api = Client()
    api.force_login(user)
    from_api = api.get(f"/api/tenants/{tenant.pk}/contacts/{contact.pk}/export/").json()
    data.pop("exported_at"), from_api.pop("exported_at")
    assert data == from_api


@pytest.mark.django_db
def test_export_is_post_only_and_csrf_protected(story, tenant, member):
    contact = story["contact"]
    client = Client(enforce_csrf_checks=True)
    client.force_login(member(tenant, "owner"))
    assert client.get(_export(contact)).status_code == 405
    assert client.post(_export(contact)).status_code == 403  # no CSRF token


# --- erasure ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_erase_page_shows_what_would_go_and_changes_nothing(story, tenant, member):
    contact = story["contact"]
    response = _client(member(tenant, "owner")).get(_erase(contact))
    assert response.status_code == 200
    preview = dict(response.context["preview"])
    assert preview["message texts emptied"] == 4
    assert preview["conversations closed"] == 2
    assert preview["flow runs ended or cleared of their answers"] == 2
    contact.refresh_from_db()
    assert contact.name == NAME and contact.erased_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("typed", ["", "erase", "yes", "ERASE it"])
def test_erasure_needs_the_word_typed(story, tenant, member, typed):
    contact = story["contact"]
    response = _client(member(tenant, "owner")).post(_erase(contact), {"confirm": typed})
    assert response.status_code == 200
    assert response.context["form"].errors
    contact.refresh_from_db()
    assert contact.name == NAME and contact.erased_at is None


@pytest.mark.django_db
def test_erasure_with_confirmation_erases_and_reports(story, tenant, member, caplog):
    contact = story["contact"]
    client = _client(member(tenant, "owner"))
    response = client.post(_erase(contact), {"confirm": "ERASE"}, follow=True)
    contact.refresh_from_db()
    assert contact.erased_at is not None and contact.name == "" and contact.phone == ""
    assert response.redirect_chain[-1][0] == _page(contact)
    html = response.content.decode()
    assert (
        "Contact erased. Name, phone and external id removed: 1; message texts emptied: 4;" in html
    )
    assert "attachments deleted" not in html  # none were there
    assert "Erased on" in html
    assert 'id="contact-erase"' not in html  # nothing left to erase
    assert 'id="contact-export"' in html  # the tombstone can still be exported
    assert NAME not in caplog.text and PHONE not in caplog.text
    # a second visit of the erase page says there is nothing left
    again = client.get(_erase(contact))
    assert again.context["nothing_to_erase"]


@pytest.mark.django_db
def test_erasure_is_csrf_protected(story, tenant, member):
    contact = story["contact"]
    client = Client(enforce_csrf_checks=True)
    client.force_login(member(tenant, "owner"))
    assert client.post(_erase(contact), {"confirm": "ERASE"}).status_code == 403
    contact.refresh_from_db()
    assert contact.erased_at is None


# --- the list -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_contact_list_is_readable_and_bounded(tenant, member, django_assert_max_num_queries):
    # given: 100 contacts, most with conversations
    channel = factories.TwilioChannelFactory(tenant=tenant)
    other_channel = factories.CloudChannelFactory(tenant=tenant)
    contacts = []
    for number in range(100):
        contact = factories.ContactFactory(
            tenant=tenant,
            name="" if number % 10 == 0 else f"Person {number}",
            opted_out_at=timezone.now() if number % 7 == 0 else None,
        )
        contacts.append(contact)
        if number % 2:
            factories.ThreadFactory(
                channel=channel, contact=contact, last_activity_at=timezone.now()
            )
            factories.ThreadFactory(channel=other_channel, contact=contact)
    client = _client(member(tenant, "viewer"))
    # when
    with django_assert_max_num_queries(10):
        response = client.get(reverse("admin:conversations_contact_changelist"))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 100
    assert "Person 99" in html
    nameless = contacts[0]
    assert "•" * (len(nameless.phone) - 4) + nameless.phone[-4:] in html
    assert nameless.phone not in html
    assert "opted out" in html
    counts = {c.pk: c.thread_count for c in response.context["cl"].result_list}
    assert counts[contacts[1].pk] == 2 and counts[contacts[0].pk] == 0
    # sorting by the annotations works
    columns = response.context["cl"].list_display
    for name, key in (("conversations", "thread_count"), ("last_activity", "last_activity_at")):
        index = str(columns.index(name))
        for order in (index, "-" + index):
            page = client.get(reverse("admin:conversations_contact_changelist"), {"o": order})
            assert page.status_code == 200
            values = [getattr(row, key) for row in page.context["cl"].result_list]
            present = [value for value in values if value is not None]
            assert present == sorted(present, reverse=order.startswith("-"))


@pytest.mark.django_db
def test_an_erasure_that_cannot_wait_for_a_send_says_so_and_changes_nothing(
    story, tenant, member, monkeypatch
):
    # given: replies to the contact being sent for longer than an erasure waits
    from conversations import admin as contact_admin
    from conversations.services.privacy import ContactBusyError

    def busy(*, contact, dry_run=False):
        if dry_run:
            return real(contact=contact, dry_run=True)
        raise ContactBusyError()

    real = contact_admin.contact_erase
    monkeypatch.setattr(contact_admin, "contact_erase", busy)
    contact = story["contact"]

    # when
    response = _client(member(tenant, "owner")).post(
        _erase(contact), {"confirm": "ERASE"}, follow=True
    )

    # then: back on the erase page, told why and what to do, nothing erased
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == _erase(contact)
    html = response.content.decode()
    assert "Replies to this contact are being sent right now; nothing was erased." in html
    assert "Try again in a minute." in html
    contact.refresh_from_db()
    assert contact.name == NAME and contact.erased_at is None
