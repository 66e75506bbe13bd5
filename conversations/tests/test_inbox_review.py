"""Regressions found by a hostile review of the staff workspace (issue #11): each test states
what must hold; all failed before their fixes."""

import base64
import json

import pytest
from django.urls import reverse

from conversations.models import Message, ThreadNote
from conversations.services.privacy import contact_erase
from conversations.tests.inbox_support import logged_in
from tests import factories


def _act(thread):
    return reverse("admin:inbox-thread-act", args=[thread.pk])


# --- 500s on bad input --------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("assignee", ["²", "³", "①"])
def test_assign_with_unicode_digits_is_not_a_500(tenant, member, waiting, assignee):
    """`_int` uses str.isdigit(), which is True for '²', '³', '①', but int() rejects them:
    ValueError, a 500 instead of "No such person"."""
    client = logged_in(member(tenant, "agent"))
    response = client.post(_act(waiting), {"action": "assign", "assignee": assignee})
    assert response.status_code == 302


def _cursor(values):
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.django_db
def test_a_tampered_cursor_with_an_out_of_range_time_is_not_a_500(tenant, member, waiting):
    """SQLite only (PostgreSQL accepts year 1): `_decode_cursor` accepts any aware time."""
    client = logged_in(member(tenant, "viewer"))
    after = _cursor({"n": True, "a": "0001-01-01T00:00:00+05:00", "i": str(waiting.pk)})
    assert client.get("/admin/inbox/", {"after": after, "status": "all"}).status_code == 200


@pytest.mark.django_db
def test_contact_page_with_an_out_of_range_before_is_not_a_500(tenant, member, waiting):
    """SQLite only: `TimelineCursor.parse` accepts 0001-01-01+05:00, which overflows to UTC."""
    client = logged_in(member(tenant, "viewer"))
    url = reverse("admin:conversations_contact_change", args=[waiting.contact_id])
    before = f"0001-01-01T00:00:00+05:00~3~{waiting.pk}"
    assert client.get(url, {"before": before}).status_code == 200


# --- existence leaks ------------------------------------------------------------------------


@pytest.mark.django_db
def test_assign_does_not_tell_an_agent_which_user_ids_exist_elsewhere(
    tenant, other_tenant, member, waiting
):
    """An agent of tenant A posting assignee=<id> learns whether that user id exists on the
    platform ("cannot answer this tenant's threads") or not ("No such person.")."""
    client = logged_in(member(tenant, "agent"))
    stranger = member(other_tenant, "owner")
    answers = []
    for assignee in (str(stranger.pk), "987654"):
        response = client.post(
            _act(waiting), {"action": "assign", "assignee": assignee}, follow=True
        )
        answers.append([str(m) for m in response.context["messages"]])
    assert answers[0] == answers[1]


@pytest.mark.django_db
def test_an_agent_cannot_probe_ids_to_learn_platform_staff_logins(tenant, member, waiting):
    """The assignee list offers the tenant's owners and agents only, but the server accepts any
    user id that passes `access.can(REPLY)`, platform staff included. An agent posting ids one by
    one gets each superuser assigned and the page then prints their login name (`person()`
    falls back to the username): the platform's admin logins, handed to every tenant's agents."""
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_user(
        username="platform-root", password="x-very-secret-1", is_superuser=True
    )
    client = logged_in(member(tenant, "agent"))
    client.post(_act(waiting), {"action": "assign", "assignee": str(root.pk)})
    page = client.get(reverse("admin:inbox-thread", args=[waiting.pk])).content.decode()
    assert "platform-root" not in page


# --- erasure and notes ----------------------------------------------------------------------


@pytest.mark.django_db
def test_no_note_can_be_added_on_an_erased_contacts_thread(tenant, member, waiting):
    """Erasure deletes the staff notes ("what staff wrote about the contact goes with the
    contact's data"), but the inbox still accepts a new note afterwards: personal data about
    an erased person is written again, and nothing ever erases it (the contact is already
    erased, a second erasure reports nothing to do)."""
    contact_erase(contact=waiting.contact)
    client = logged_in(member(tenant, "agent"))
    client.post(_act(waiting), {"action": "note", "text": "Maria's CPF is 123.456.789-00"})
    assert not ThreadNote.all_objects.filter(thread=waiting).exists()


# --- retry ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retry_sends_a_failed_message_only_once(tenant, member, waiting):
    """Retry re-sends the failed message's text as a new message but leaves the failed one
    as it was (still failed, still offering Retry): a double click, a browser re-POST or two
    agents each send it again."""
    failed = factories.MessageFactory(
        thread=waiting,
        direction="outbound",
        sender="agent",
        status="failed",
        error_code="send_unconfirmed",
        text="Your booking is confirmed",
    )
    client = logged_in(member(tenant, "agent"))
    for _ in range(2):
        client.post(_act(waiting), {"action": "retry", "message": str(failed.pk)})
    resent = Message.objects.filter(thread=waiting, direction="outbound").exclude(pk=failed.pk)
    assert [m.text for m in resent] == ["Your booking is confirmed"]


# --- API keys created in the admin -----------------------------------------------------------


@pytest.mark.django_db
def test_a_new_api_key_is_not_stored_readable_in_a_cookie(tenant, member):
    """The raw key goes into `messages.warning`, and Django's default message storage
    (FallbackStorage -> CookieStorage) puts it in the `messages` cookie: signed, not
    encrypted, so the full key sits in the browser's cookie jar (and any proxy/access log
    that records cookies) until the next page renders it. Anyone reading the cookie
    recovers it with base64+zlib, no server secret needed."""
    import zlib

    client = logged_in(member(tenant, "owner"))
    response = client.post(
        "/admin/tenants/tenantapikey/add/", {"tenant": str(tenant.pk), "name": "crm"}
    )
    assert response.status_code == 302
    cookie = response.cookies.get("messages")
    payload = cookie.value.split(":")[0] if cookie else ""
    decoded = ""
    if payload.startswith("."):
        raw = payload[1:]
        decoded = zlib.decompress(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))).decode()
    assert "chk_" not in decoded
