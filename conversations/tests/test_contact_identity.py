"""A contact known by a phone, a WhatsApp user id or both: found, linked and merged through the
blind indexes; exported, erased and re-encrypted like the phone; shown by the API."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from channels_app.providers import ParsedInbound
from conversations.models import ChatThread, Contact, Message
from conversations.services.contacts import (
    contact_external_id,
    contact_get_or_create,
    contact_thread_for_inbound,
)
from conversations.services.inbound import message_receive
from conversations.services.privacy import (
    ContactNotFound,
    contact_erase,
    contact_export,
    contact_find,
)
from conversations.tests.test_privacy_erasure import _raw_traces
from core import rotation
from core.crypto import wa_user_lookup
from tests import factories
from tests.api_helpers import key_client

pytestmark = pytest.mark.django_db

USER_ID = "IN.2081978709342942"
PHONE = "+919745786257"


def test_a_contact_can_be_known_by_user_id_only(tenant):
    contact, created = contact_get_or_create(tenant=tenant, user_id=USER_ID, name="Muhsin")
    again, created_again = contact_get_or_create(tenant=tenant, user_id=f"whatsapp:{USER_ID}")
    assert (created, created_again) == (True, False)
    assert again.pk == contact.pk
    assert (contact.phone, contact.phone_lookup) == ("", None)
    assert (contact.wa_user_id, contact.wa_user_lookup) == (USER_ID, wa_user_lookup(USER_ID))
    assert contact.external_id == contact_external_id(USER_ID)
    assert contact.external_id != contact_external_id("+2081978709342942")


def test_neither_a_phone_nor_a_user_id_is_refused(tenant):
    with pytest.raises(ValueError):
        contact_get_or_create(tenant=tenant, phone="whatsapp:US.1234")
    with pytest.raises(ValueError):
        contact_get_or_create(tenant=tenant, user_id="foo_bar")
    assert not Contact.objects.exists()


def test_user_ids_are_per_tenant(tenant, other_tenant):
    mine, _ = contact_get_or_create(tenant=tenant, user_id=USER_ID)
    theirs, _ = contact_get_or_create(tenant=other_tenant, user_id=USER_ID)
    assert mine.pk != theirs.pk


def test_both_ids_link_onto_the_contact_found_by_either(tenant):
    by_phone, _ = contact_get_or_create(tenant=tenant, phone=PHONE)
    linked, created = contact_get_or_create(tenant=tenant, phone=PHONE, user_id=USER_ID)
    assert (linked.pk, created) == (by_phone.pk, False)
    found, _ = contact_get_or_create(tenant=tenant, user_id=USER_ID)
    assert found.pk == by_phone.pk
    assert (found.phone, found.wa_user_id) == (PHONE, USER_ID)


def test_a_new_user_id_for_the_phone_replaces_the_old_one(tenant):
    # a person who changes number gets a new user id; the phone's contact follows the latest
    contact_get_or_create(tenant=tenant, phone=PHONE, user_id="IN.1111")
    contact, _ = contact_get_or_create(tenant=tenant, phone=PHONE, user_id="IN.2222")
    contact.refresh_from_db()
    assert contact.wa_user_id == "IN.2222"
    assert not Contact.objects.filter(wa_user_lookup=wa_user_lookup("IN.1111")).exists()


def test_merging_moves_threads_messages_and_consent(tenant, twilio_channel, cloud_channel):
    # given: the phone contact with a thread on Twilio; the user-id contact, opted out later,
    # with threads on Twilio and on the Cloud API
    by_phone, _ = contact_get_or_create(tenant=tenant, phone=PHONE, name="")
    by_user, _ = contact_get_or_create(tenant=tenant, user_id=USER_ID, name="Muhsin")
    phone_thread = factories.ThreadFactory(channel=twilio_channel, contact=by_phone)
    user_twilio = factories.ThreadFactory(channel=twilio_channel, contact=by_user)
    user_cloud = factories.ThreadFactory(channel=cloud_channel, contact=by_user)
    factories.MessageFactory(thread=phone_thread, text="one")
    factories.MessageFactory(thread=user_twilio, text="two")
    factories.MessageFactory(thread=user_cloud, text="three")
    Contact.objects.filter(pk=by_user.pk).update(opted_out_at="2026-01-02T00:00:00Z")

    # when
    merged, created = contact_get_or_create(tenant=tenant, phone=PHONE, user_id=USER_ID)

    # then: one live contact with both ids, the name it lacked and the opt-out
    assert (merged.pk, created) == (by_phone.pk, False)
    merged.refresh_from_db()
    assert (merged.phone, merged.wa_user_id, merged.name) == (PHONE, USER_ID, "Muhsin")
    assert merged.is_opted_out
    assert list(Contact.objects.values_list("pk", flat=True)) == [by_phone.pk]
    # the Twilio threads became one, the Cloud API thread moved over
    threads = {t.channel_id: t for t in ChatThread.objects.filter(contact=merged)}
    assert set(threads) == {twilio_channel.pk, cloud_channel.pk}
    assert threads[twilio_channel.pk].pk == phone_thread.pk
    assert sorted(threads[twilio_channel.pk].messages.values_list("text", flat=True)) == [
        "one",
        "two",
    ]
    assert threads[cloud_channel.pk].pk == user_cloud.pk
    assert ChatThread.all_objects.get(pk=user_twilio.pk).deleted_at is not None
    gone = Contact.all_objects.get(pk=by_user.pk)
    assert gone.deleted_at is not None
    assert (gone.wa_user_id, gone.wa_user_lookup, gone.name) == ("", None, "")


def test_thread_for_inbound_links_in_one_call(tenant, cloud_channel):
    contact_get_or_create(tenant=tenant, user_id=USER_ID)
    thread, created = contact_thread_for_inbound(
        channel=cloud_channel, phone=PHONE, user_id=USER_ID
    )
    assert created
    assert (thread.contact.phone, thread.contact.wa_user_id) == (PHONE, USER_ID)
    again, created_again = contact_thread_for_inbound(channel=cloud_channel, user_id=USER_ID)
    assert (again.pk, created_again) == (thread.pk, False)


# --- privacy ----------------------------------------------------------------------------------


def _user_with_flow_reply(channel):
    message, _ = message_receive(
        channel=channel,
        inbound=ParsedInbound(
            provider_message_id="wamid.FLOWREPLY",
            from_phone="",
            from_user_id=USER_ID,
            profile_name="Muhsin",
            kind="flow_reply",
            text="Sent",
            content={"flow_reply": {"name": "flow", "response": {"cpf": "123.456.789-00"}}},
        ),
    )
    return message


def test_export_holds_the_user_id_and_the_structured_content(cloud_channel):
    message = _user_with_flow_reply(cloud_channel)
    exported = contact_export(contact=message.thread.contact)
    assert exported["contact"]["wa_user_id"] == USER_ID
    assert exported["contact"]["phone"] == ""
    (row,) = exported["threads"][0]["messages"]
    assert (row["kind"], row["private_data"]["flow_reply"]["response"]) == (
        "flow_reply",
        {"cpf": "123.456.789-00"},
    )


def test_erasure_leaves_no_trace_of_the_user_id_or_the_content(cloud_channel):
    message = _user_with_flow_reply(cloud_channel)
    contact = message.thread.contact
    needles = [USER_ID, wa_user_lookup(USER_ID), "123.456.789-00", "Muhsin"]
    assert _raw_traces(needles)

    report = contact_erase(contact=contact)

    assert report.contacts_redacted == 1
    assert report.messages_redacted == 1
    assert _raw_traces(needles) == []
    contact.refresh_from_db()
    assert (contact.wa_user_id, contact.wa_user_lookup) == ("", None)
    # the same user writing again is a new contact
    again, _ = contact_get_or_create(tenant=cloud_channel.tenant, user_id=USER_ID)
    assert again.pk != contact.pk


def test_contacts_are_found_by_user_id_for_the_gdpr_commands(cloud_channel):
    message = _user_with_flow_reply(cloud_channel)
    tenant_id = str(cloud_channel.tenant_id)
    assert contact_find(tenant_id=tenant_id, wa_user_id=USER_ID).pk == message.thread.contact_id
    with pytest.raises(ContactNotFound):
        contact_find(tenant_id=tenant_id, wa_user_id="foo_bar")
    with pytest.raises(ContactNotFound):
        contact_find(tenant_id=tenant_id, phone="+1234", wa_user_id=USER_ID)
    out = StringIO()
    call_command("gdpr_export", "--tenant", tenant_id, "--wa-user-id", USER_ID, stdout=out)
    assert json.loads(out.getvalue())["contact"]["wa_user_id"] == USER_ID


def test_rotation_covers_the_user_id():
    found = {(g.label, f.attname) for g in rotation.encrypted_field_groups() for f in g.fields}
    assert ("conversations.Contact", "wa_user_id") in found
    assert ("conversations.Message", "private_data") in found


# --- API --------------------------------------------------------------------------------------


def test_api_shows_and_filters_by_user_id(cloud_channel, other_tenant):
    message = _user_with_flow_reply(cloud_channel)
    factories.ContactFactory(
        tenant=other_tenant, wa_user_id=USER_ID, wa_user_lookup=wa_user_lookup(USER_ID)
    )
    tenant = cloud_channel.tenant
    url = reverse("contact-list", kwargs={"tenant": tenant.pk})
    client = key_client(tenant)

    rows = client.get(url, {"wa_user_id": USER_ID}).json()["results"]

    assert [(r["id"], r["phone"], r["wa_user_id"]) for r in rows] == [
        (str(message.thread.contact_id), "", USER_ID)
    ]
    assert client.get(url, {"wa_user_id": "US.9999"}).json()["results"] == []
    threads = client.get(reverse("thread-list", kwargs={"tenant": tenant.pk})).json()
    assert threads["results"][0]["contact"]["wa_user_id"] == USER_ID
    messages = client.get(
        reverse("thread-messages", kwargs={"tenant": tenant.pk, "thread": message.thread_id})
    ).json()["results"]
    assert (messages[0]["kind"], messages[0]["content"]["flow_reply"]["name"]) == (
        "flow_reply",
        "flow",
    )
    assert Message.objects.count() == 1


def test_a_merge_takes_the_runs_and_handoffs_so_erasure_reaches_them(tenant, twilio_channel):
    """Review finding: the emptied thread kept its flow runs (with the answers) and its
    open handoff, out of reach of the kept contact's export and erasure."""
    from django.utils import timezone

    from conversations.models import Handoff
    from conversations.services.privacy import contact_erase, contact_export
    from conversations.services.threads import thread_update
    from flows.models import Flow, FlowSession, SessionStatus

    # given: one person as two contacts, each with a thread on the channel; the user-id one
    # answered a flow and waits for a person
    by_phone, _ = contact_get_or_create(tenant=tenant, phone="+919745786257", name="")
    by_user, _ = contact_get_or_create(tenant=tenant, user_id="IN.2081978709342942", name="Mu")
    kept = factories.ThreadFactory(channel=twilio_channel, contact=by_phone)
    emptied = factories.ThreadFactory(channel=twilio_channel, contact=by_user)
    factories.MessageFactory(thread=emptied, text="two")
    flow = Flow.objects.create(
        tenant=tenant, channel=twilio_channel, flow_id="f", version=1, name="F", definition={}
    )
    FlowSession.objects.create(
        tenant=tenant,
        thread=emptied,
        flow=flow,
        status=SessionStatus.COMPLETED,
        variables={"email": "secret.person@example.org"},
        ended_at=timezone.now(),
    )
    thread_update(thread=emptied, needs_human=True)
    Contact.objects.filter(pk=by_user.pk).update(
        opted_out_at=timezone.now(), opt_out_source="provider:21610"
    )

    # when: a message carries both ids
    merged, _ = contact_get_or_create(
        tenant=tenant, phone="+919745786257", user_id="IN.2081978709342942"
    )

    # then: the run and the open handoff are on the kept thread, the consent with its source
    assert FlowSession.all_objects.filter(thread=kept).count() == 1
    assert Handoff.objects.filter(thread=kept, ended_at__isnull=True).count() == 1
    merged.refresh_from_db()
    assert merged.opt_out_source == "provider:21610"
    assert Contact.all_objects.get(pk=by_user.pk).external_id == ""
    exported = contact_export(contact=merged)
    assert sum(len(t["flow_sessions"]) for t in exported["threads"]) == 1
    # and erasing the kept contact leaves nothing of the answers
    contact_erase(contact=merged)
    assert _raw_traces(["secret.person@example.org", "IN.2081978709342942"]) == []


def test_a_phone_of_non_ascii_digits_is_no_phone():
    from core.crypto import normalize_phone

    assert normalize_phone("+1٢٢٢٢٢٢٢") == ""
    assert normalize_phone("+12222222") == "+12222222"
