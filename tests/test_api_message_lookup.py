"""Finding a message by the id its provider gave it (#13 item 5): `?provider_message_id=` on
the thread's messages accepts the raw id although WhatsApp ids are stored pseudonymised, and
never reaches another tenant's message with the same id."""

import pytest
from django.urls import reverse

from core.crypto import provider_id_pseudonym
from tests import factories
from tests.api_helpers import error_of, key_client

pytestmark = pytest.mark.django_db

WAMID = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3AA=="
SMSID = "SM0123456789abcdef0123456789abcdef"


@pytest.fixture
def thread(tenant):
    return factories.ThreadFactory(channel=factories.CloudChannelFactory(tenant=tenant))


def url_of(tenant, thread):
    return reverse("thread-messages", kwargs={"tenant": tenant.pk, "thread": thread.pk})


def outbound(thread, provider_id, text):
    return factories.MessageFactory(
        thread=thread,
        direction="outbound",
        status="sent",
        sender="flow",
        text=text,
        provider_message_id=provider_id,
    )


def test_a_cloud_api_id_is_found_by_its_raw_and_by_its_stored_form(
    tenant, thread, django_assert_max_num_queries
):
    # given: the wamid is stored as a keyed hash, beside another message
    mine = outbound(thread, WAMID, "the one")
    outbound(thread, "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJBQkNERUYwAA==", "another")
    factories.MessageFactory(thread=thread, text="inbound, no id")
    stored = provider_id_pseudonym(WAMID)
    assert stored.startswith("wamid.h:") and WAMID not in stored
    client = key_client(tenant)

    # when: looked up by the raw id Meta gave
    with django_assert_max_num_queries(6):
        response = client.get(url_of(tenant, thread), {"provider_message_id": WAMID})

    # then: that message only, showing the stored form
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert (row["id"], row["text"], row["provider_message_id"]) == (str(mine.pk), "the one", stored)

    # and: the form the API shows finds it too, surrounding spaces ignored
    again = client.get(url_of(tenant, thread), {"provider_message_id": f" {stored} "})
    assert [r["id"] for r in again.json()["results"]] == [str(mine.pk)]


def test_a_twilio_sid_is_found_as_it_is(tenant):
    thread = factories.ThreadFactory(channel=factories.TwilioChannelFactory(tenant=tenant))
    mine = outbound(thread, SMSID, "twilio")
    response = key_client(tenant).get(url_of(tenant, thread), {"provider_message_id": SMSID})
    assert [r["id"] for r in response.json()["results"]] == [str(mine.pk)]
    # the id is compared exactly (case matters: Twilio SIDs are case-sensitive)
    other_case = key_client(tenant).get(
        url_of(tenant, thread), {"provider_message_id": SMSID.upper()}
    )
    assert other_case.json()["results"] == []


def test_another_tenants_message_with_the_same_id_is_never_returned(tenant, other_tenant, thread):
    # given: the same raw id on a channel of another tenant (same stored hash)
    foreign_thread = factories.ThreadFactory(
        channel=factories.CloudChannelFactory(tenant=other_tenant)
    )
    foreign = outbound(foreign_thread, WAMID, "secret of another tenant")
    foreign.refresh_from_db()
    assert foreign.provider_message_id == provider_id_pseudonym(WAMID)
    client = key_client(tenant)

    # when: this tenant looks it up in its own thread, which does not hold it
    response = client.get(url_of(tenant, thread), {"provider_message_id": WAMID})

    # then: nothing; and the other tenant's thread is a 404 whatever the filter
    assert response.status_code == 200 and response.json()["results"] == []
    foreign_url = url_of(tenant, foreign_thread)
    assert client.get(foreign_url, {"provider_message_id": WAMID}).status_code == 404
    assert "secret of another tenant" not in response.content.decode()


def test_an_unknown_id_finds_nothing(tenant, thread):
    outbound(thread, WAMID, "x")
    response = key_client(tenant).get(url_of(tenant, thread), {"provider_message_id": "SMnope"})
    assert response.status_code == 200 and response.json()["results"] == []


@pytest.mark.parametrize(
    "query",
    [
        "provider_message_id=",
        "provider_message_id=%20",
        "provider_message_id=a&provider_message_id=b",
        "provider_message_id=" + "x" * 1001,  # (an Instagram mid runs past 128)
        "provider_message_id=SM%00",
    ],
)
def test_a_bad_value_is_a_400_naming_the_filter(tenant, thread, query):
    response = key_client(tenant).get(f"{url_of(tenant, thread)}?{query}")
    assert response.status_code == 400
    error = error_of(response)
    assert [detail["path"] for detail in error["details"]] == ["provider_message_id"]
