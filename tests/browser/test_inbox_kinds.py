"""A conversation with every kind of message a person can send, read by staff in Chromium: a
contact known only by a WhatsApp user id, a contact card, a form's answers, a reaction, an
ad referral and a reply sent from the WhatsApp Business app, with nothing blocked by the CSP."""

import pytest
from playwright.sync_api import expect

from tests import factories

pytestmark = pytest.mark.browser


def test_every_kind_reads_in_the_conversation(staff_page, browser_problems, transactional_db):
    # given: a person known only by a WhatsApp user id, and one message of each new kind
    tenant = factories.TenantFactory(name="Acme Gym")
    channel = factories.CloudChannelFactory(tenant=tenant)
    contact = factories.ContactFactory(
        tenant=tenant, name="Kerry Fisher", phone="", phone_lookup=None, wa_user_id="US.1234"
    )
    thread = factories.ThreadFactory(channel=channel, contact=contact)

    def message(kind, text="", **fields):
        return factories.MessageFactory(thread=thread, kind=kind, text=text, **fields)

    message("text", "Hi, I saw your ad", private_data={"referral": {"source_type": "ad"}})
    message("contacts", private_data={"contacts": [{"name": {"formatted_name": "Diana D"}}]})
    message("flow_reply", "Sent", private_data={"flow_reply": {"name": "f", "response": {}}})
    message("reaction", private_data={"reaction": {"emoji": "👍"}})
    factories.MessageFactory(
        thread=thread, direction="outbound", sender="business", status="sent", text="See you!"
    )

    # when
    staff_page.goto(f"/admin/inbox/{thread.pk}/")

    # then
    expect(staff_page.get_by_text("👤 Diana D")).to_be_visible()
    expect(staff_page.get_by_text("Reacted 👍")).to_be_visible()
    expect(staff_page.get_by_text("WhatsApp Business app")).to_be_visible()
    staff_page.screenshot(path="/tmp/inbox-kinds.png", full_page=True)
    assert browser_problems.collect(staff_page) == []
