"""Concurrent deliveries from one person known by a WhatsApp user id, against PostgreSQL with
real threads and connections: one contact and one thread, however the deliveries interleave."""

import pytest
from django.test import Client

from channels_app.tests.webhook_support import post_twilio, twilio_params
from conversations.models import ChatThread, Contact, Message
from conversations.tests.test_inbound_concurrency import run_concurrently
from flows.services import FlowRun
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_messages_of_a_user_id_only_contact_make_one_contact(tenant, monkeypatch):
    # given: no flow (processing answers nothing), 6 different messages about to arrive at once,
    # half of them also naming the person's phone
    monkeypatch.setattr("conversations.services.process.flow_handle_inbound", lambda **_: FlowRun())
    factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")

    def deliver(n):
        params = twilio_params("peer/courier_waReceiveFromBSUID")
        params["MessageSid"] = params["SmsSid"] = params["SmsMessageSid"] = f"SM{n:032d}"
        if n % 2:
            params["From"] = "whatsapp:+14133881111"  # ExternalUserId keeps the user id
        return lambda: post_twilio(Client(), params, token="chan-token").status_code

    # when
    statuses = run_concurrently([deliver(n) for n in range(6)])

    # then
    assert statuses == [200] * 6
    contact = Contact.objects.get()
    assert (contact.phone, contact.wa_user_id) == ("+14133881111", "US.1234")
    assert ChatThread.objects.get().contact_id == contact.pk
    assert Message.objects.count() == 6


def test_concurrent_messages_that_merge_two_contacts_merge_them_once(tenant, monkeypatch):
    # given: the person known twice, by phone and by user id, each with a conversation
    monkeypatch.setattr("conversations.services.process.flow_handle_inbound", lambda **_: FlowRun())
    factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")

    def params(n, **changes):
        form = twilio_params("peer/courier_waReceiveBSUIDValid", **changes)
        form["MessageSid"] = form["SmsSid"] = form["SmsMessageSid"] = f"SM{n:032d}"
        return form

    client = Client()
    post_twilio(client, params(100, ExternalUserId=""), token="chan-token")
    post_twilio(client, params(101, From="whatsapp:US.1234"), token="chan-token")
    assert Contact.objects.count() == 2

    # when: 4 messages naming both arrive at once
    statuses = run_concurrently(
        [
            (lambda n=n: post_twilio(Client(), params(n), token="chan-token").status_code)
            for n in range(4)
        ]
    )

    # then: one contact with both ids, one conversation with all 6 messages
    assert statuses == [200] * 4
    contact = Contact.objects.get()
    assert (contact.phone, contact.wa_user_id) == ("+14133881111", "US.1234")
    thread = ChatThread.objects.get()
    assert thread.contact_id == contact.pk
    assert Message.objects.filter(thread=thread).count() == 6
