"""The staff journey through the inbox, in Chromium: log in, see the conversation that waits
for a human, open it, read an image and a location, reply with Enter, watch the tick advance
when the provider's status callback arrives, add a private note, assign it to oneself, close
it; and another tenant's staff cannot open it."""

import re
from datetime import timedelta

import pytest
import responses
from django.core.files.base import ContentFile
from django.utils import timezone
from playwright.sync_api import Page, expect

from channels_app.providers import ParsedStatus
from conversations.models import Message, MessageAttachment
from conversations.services.outbound import message_status_update
from tests import factories

pytestmark = pytest.mark.browser

SID = "AC11111111111111111111111111111111"
TWILIO_SEND = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"


def png(width: int, height: int) -> bytes:
    """A real PNG (a soft gradient), so the thumbnail decodes in the browser."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes((60 + x % 150, 120 + y % 100, 200)) for x in range(width))
        for y in range(height)
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def log_in(page: Page, username: str) -> None:
    page.goto("/admin/login/?next=/admin/inbox/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-member-123456")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/inbox/")


@pytest.fixture
def conversation(transactional_db):
    tenant = factories.TenantFactory(name="Acme Gym")
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    contact = factories.ContactFactory(tenant=tenant, name="Maria Silva", phone="+5511988887777")
    thread = factories.ThreadFactory(
        channel=channel,
        contact=contact,
        needs_human=True,
        handoff_reason="asked for a person",
        last_inbound_at=timezone.now(),
    )
    factories.MessageFactory(thread=thread, text="Oi! Quero saber dos planos")
    image = factories.MessageFactory(thread=thread, kind="image", text="a foto da ficha")
    attachment = MessageAttachment.objects.create(
        message=image, media_type="image", content_type="image/png", download_status="stored"
    )
    attachment.file.save("ficha.png", ContentFile(png(160, 100)), save=True)
    factories.MessageFactory(
        thread=thread,
        kind="location",
        text="",
        private_data={
            "location": {"latitude": -23.55, "longitude": -46.63, "name": "Academia Paulista"}
        },
    )
    # a quiet conversation that does not wait for anyone
    quiet = factories.ThreadFactory(
        channel=channel, contact=factories.ContactFactory(tenant=tenant, name="Zeca")
    )
    factories.MessageFactory(thread=quiet, text="valeu")
    agent = factories.UserFactory(username="ana", first_name="Ana", last_name="Lima")
    factories.MembershipFactory(tenant=tenant, user=agent, role="agent")
    return thread


def test_an_agent_answers_a_waiting_conversation(page: Page, browser_problems, conversation):
    problems: list[str] = []
    with responses.RequestsMock(assert_all_requests_are_fired=False) as twilio:
        twilio.add(
            responses.POST,
            TWILIO_SEND,
            json={"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"},
            status=201,
        )

        # given: the agent logs in and sees who waits first
        log_in(page, "ana")
        rows = page.locator(".inbox-row")
        expect(rows.first).to_contain_text("Maria Silva")
        expect(rows.first).to_contain_text("Needs a human")
        expect(rows.first.locator(".unread-count")).to_have_text("3")
        expect(rows.nth(1)).to_contain_text("Zeca")
        page.screenshot(path="/tmp/inbox-list.png", full_page=True)
        problems += browser_problems.collect(page)

        # when: they open it, the image and the location are there
        rows.first.locator("a").click()
        expect(page.locator(".conversation-header h1")).to_have_text("Maria Silva")
        image = page.locator(".media-image img")
        expect(image).to_be_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth") == 160
        expect(page.locator(".location")).to_contain_text("Academia Paulista")
        expect(page.locator(".location a")).to_have_attribute("href", re.compile("openstreetmap"))

        # and they reply with Enter
        box = page.locator("#reply-form textarea")
        box.fill("Olá Maria, já te explico!")
        box.press("Enter")
        bubble = page.locator(".bubble-outbound").last
        expect(bubble).to_contain_text("Olá Maria, já te explico!")
        expect(bubble.locator(".bubble-meta")).to_have_text("Ana Lima")
        expect(box).to_have_value("")
        expect(bubble.locator(".tick-sent")).to_be_visible(timeout=10_000)
        problems += browser_problems.collect(page)

        # then: the provider's callback moves the tick, live, while a note is being typed
        box.fill("typing something")
        sent = Message.objects.get(direction="outbound")
        message_status_update(
            channel=conversation.channel,
            status=ParsedStatus(provider_message_id=sent.provider_message_id, status="read"),
        )
        expect(page.locator(f"#msg-{sent.pk} .tick-read")).to_be_visible(timeout=6_000)
        expect(box).to_have_value("typing something")

        # and a private note, assignment and closing
        box.fill("Cliente VIP, oferecer plano anual")
        page.get_by_role("button", name="Add private note").click()
        expect(page.locator(".bubble-note")).to_contain_text("Cliente VIP")
        page.get_by_role("button", name="Assign to me").click()
        expect(page.locator("#thread-state")).to_contain_text("Ana Lima")
        page.get_by_role("button", name="Close", exact=True).click()
        expect(page.locator("#thread-state")).to_contain_text("Closed")
        page.screenshot(path="/tmp/inbox-conversation.png", full_page=True)
        problems += browser_problems.collect(page)
        assert [call.request.method for call in twilio.calls] == ["POST"]  # sent once
    assert problems == []


def test_another_tenants_staff_cannot_open_the_thread(page: Page, conversation):
    other = factories.TenantFactory(name="Other Clinic")
    outsider = factories.UserFactory(username="olga")
    factories.MembershipFactory(tenant=other, user=outsider, role="owner")
    log_in(page, "olga")
    expect(page.locator("#content-main")).not_to_contain_text("Maria Silva")
    response = page.goto(f"/admin/inbox/{conversation.pk}/")
    assert response is not None and response.status == 404


def test_a_closed_window_offers_the_channels_templates(
    page: Page, browser_problems, transactional_db
):
    # given: a Cloud API conversation quiet for three days, and the number's templates
    tenant = factories.TenantFactory(name="Acme Gym")
    channel = factories.CloudChannelFactory(tenant=tenant)
    thread = factories.ThreadFactory(
        channel=channel,
        contact=factories.ContactFactory(tenant=tenant, name="Maria Silva", phone="+5511988887777"),
        last_inbound_at=timezone.now() - timedelta(days=3),
    )
    factories.MessageFactory(thread=thread, text="Vocês abrem no feriado?")
    Message.objects.filter(thread=thread).update(created_at=timezone.now() - timedelta(days=3))
    factories.ChannelTemplateFactory(
        channel=channel,
        name="holiday_hours",
        language="pt_BR",
        body="Olá {{1}}! No feriado abrimos das {{2}}.",
        components=[{"type": "BODY", "text": "Olá {{1}}! No feriado abrimos das {{2}}."}],
        parameters=[{"component": "body", "name": "1"}, {"component": "body", "name": "2"}],
    )
    factories.ChannelTemplateFactory(channel=channel, name="follow_up", language="en_US")
    agent = factories.UserFactory(username="ana", first_name="Ana", last_name="Lima")
    factories.MembershipFactory(tenant=tenant, user=agent, role="agent")
    graph = f"https://graph.facebook.test/v22.0/{channel.settings['phone_number_id']}/messages"

    with responses.RequestsMock(assert_all_requests_are_fired=False) as meta:
        meta.add(responses.POST, graph, json={"messages": [{"id": "wamid.TEMPLATE1"}]})

        # when: the agent opens it
        log_in(page, "ana")
        page.goto(f"/admin/inbox/{thread.pk}/")
        expect(page.locator(".window-closed")).to_contain_text("The 24-hour window is closed")
        offers = page.locator(".template-offer")
        expect(offers).to_have_count(2)
        expect(page.locator("#reply-form button[value=reply]")).to_be_disabled()
        first = offers.first
        expect(first.locator("summary")).to_contain_text("follow_up")
        first.locator("summary").click()  # closes the first; open the second
        second = offers.nth(1)
        second.locator("summary").click()
        second.locator("input[name=value]").nth(0).fill("Maria")
        second.locator("input[name=value]").nth(1).fill("8h às 14h")
        page.screenshot(path="/tmp/inbox-templates.png", full_page=True)
        second.get_by_role("button", name="Send template").click()

        # then: the rendered template is in the conversation, sent once as a template
        bubble = page.locator(".bubble-outbound").last
        expect(bubble).to_contain_text("Olá Maria! No feriado abrimos das 8h às 14h.")
        expect(bubble).to_contain_text("template holiday_hours")
        expect(bubble.locator(".tick-sent")).to_be_visible(timeout=10_000)
        expect(second.locator("input[name=value]").nth(0)).to_have_value("")  # emptied
        page.screenshot(path="/tmp/inbox-template-sent.png", full_page=True)
        assert len(meta.calls) == 1
        assert b'"type": "template"' in meta.calls[0].request.body
    assert browser_problems.collect(page) == []
