"""The contact page as an owner and an agent use it: the owner finds a contact in the list,
reads its conversations and flow runs, downloads the GDPR export and erases the contact after
confirming; an agent reads the same page without the export and erase buttons."""

import json
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from flows.models import Flow, FlowSession, SessionStatus
from tests import factories

pytestmark = pytest.mark.browser

PASSWORD = "pw-member-123456"


def log_in(page: Page, username: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def _maria(tenant):
    contact = factories.ContactFactory(
        tenant=tenant,
        name="Maria Silva",
        phone="+5511977776666",
        opted_in_at=timezone.now(),
        opt_in_source="keyword",
    )
    channel = factories.TwilioChannelFactory(tenant=tenant)
    thread = factories.ThreadFactory(channel=channel, contact=contact, needs_human=True)
    factories.MessageFactory(thread=thread, text="I want a trial class")
    factories.ThreadFactory(channel=factories.CloudChannelFactory(tenant=tenant), contact=contact)
    flow = Flow.objects.create(
        tenant=tenant,
        channel=channel,
        flow_id="welcome",
        version=3,
        name="Welcome tour",
        definition={"flow_id": "welcome", "nodes": []},
    )
    FlowSession.objects.create(
        tenant=tenant,
        thread=thread,
        flow=flow,
        status=SessionStatus.COMPLETED,
        current_node="book",
        variables={"goal": "lose weight", "email": "maria@example.org"},
        handed_off=True,
        ended_at=timezone.now(),
    )
    return contact, thread


def test_an_owner_exports_and_erases_a_contact(page: Page, browser_problems, tmp_path):
    # given: an owner of Acme, and Maria with two conversations and a flow run
    acme = factories.TenantFactory(name="Acme Gym")
    contact, thread = _maria(acme)
    factories.MembershipFactory(
        tenant=acme, user=factories.UserFactory(username="olivia"), role="owner"
    )
    problems: list[str] = []

    # when: the owner opens the contact list and the contact
    log_in(page, "olivia")
    page.goto("/admin/conversations/contact/")
    expect(page.locator("#result_list")).to_contain_text("Maria Silva")
    expect(page.locator("#result_list")).to_contain_text("opted in")
    page.screenshot(path="/tmp/contact-list.png", full_page=True)
    problems += browser_problems.collect(page)
    page.get_by_role("link", name="Maria Silva").click()

    # then: who she is, both conversations, the flow run and her answers
    expect(page.locator("#contact-header")).to_contain_text("Maria Silva")
    expect(page.locator("#contact-header")).to_contain_text("6666")
    expect(page.locator("#contact-header")).not_to_contain_text("+5511977776666")
    expect(page.locator("#contact-conversations tbody tr")).to_have_count(2)
    expect(page.locator("#contact-timeline")).to_contain_text("Welcome tour")
    expect(page.locator("#contact-timeline")).to_contain_text("handed off")
    expect(page.locator(".session-variables")).to_contain_text("lose weight")
    page.screenshot(path="/tmp/contact-page-owner.png", full_page=True)
    problems += browser_problems.collect(page)

    # when: they download the export
    with page.expect_download() as download_info:
        page.click("#contact-export")
    download = download_info.value
    assert re.fullmatch(rf"contact-{contact.pk}-\d{{8}}-\d{{6}}\.json", download.suggested_filename)
    saved = tmp_path / "export.json"
    download.save_as(saved)
    data = json.loads(saved.read_text())
    # then: the API's document, decrypted
    assert data["contact"]["name"] == "Maria Silva"
    assert {t["id"] for t in data["threads"]} >= {str(thread.pk)}
    problems += browser_problems.collect(page)

    # when: they ask to erase and see what will go
    page.click("#contact-erase")
    expect(page.locator("#erase-preview")).to_contain_text("Message texts emptied")
    page.screenshot(path="/tmp/contact-erase-confirm.png", full_page=True)
    # a wrong word erases nothing
    page.fill("#id_confirm", "yes")
    page.click("#erase-submit")
    expect(page.locator(".errorlist")).to_contain_text("Type ERASE")
    problems += browser_problems.collect(page)
    page.fill("#id_confirm", "ERASE")
    page.click("#erase-submit")

    # then: back on the page, erased, with the report
    expect(page.locator(".messagelist")).to_contain_text("Contact erased.")
    expect(page.locator("#contact-header")).to_contain_text("Erased on")
    expect(page.locator("#contact-header")).not_to_contain_text("Maria Silva")
    expect(page.locator("#contact-erase")).to_have_count(0)
    page.screenshot(path="/tmp/contact-page-erased.png", full_page=True)
    problems += browser_problems.collect(page)
    contact.refresh_from_db()
    assert contact.erased_at is not None and contact.name == ""
    assert problems == []


def test_an_agent_reads_the_contact_page_without_export_or_erase(page: Page, browser_problems):
    acme = factories.TenantFactory(name="Acme Gym")
    contact, thread = _maria(acme)
    factories.MembershipFactory(
        tenant=acme, user=factories.UserFactory(username="alex"), role="agent"
    )

    log_in(page, "alex")
    page.goto(f"/admin/conversations/contact/{contact.pk}/change/")
    expect(page.locator("#contact-header")).to_contain_text("Maria Silva")
    expect(page.locator("#contact-timeline")).to_contain_text("Welcome tour")
    expect(page.locator("#contact-export")).to_have_count(0)
    expect(page.locator("#contact-erase")).to_have_count(0)
    expect(page.locator("#contact-timeline")).not_to_contain_text("lose weight")
    page.screenshot(path="/tmp/contact-page-agent.png", full_page=True)
    problems = browser_problems.collect(page)

    # and the thread link leads to the conversation
    page.locator("#contact-conversations a").first.click()
    expect(page).to_have_url(re.compile(r"/admin/inbox/[0-9a-f-]+/"))
    problems += browser_problems.collect(page)
    assert problems == []


def test_an_owner_told_that_replies_are_being_sent_can_erase_a_minute_later(
    page: Page, browser_problems, monkeypatch
):
    # given: Maria, whose replies are being sent for longer than an erasure waits
    from conversations import admin as contact_admin
    from conversations.services.privacy import ContactBusyError

    acme = factories.TenantFactory(name="Acme Gym")
    contact, _thread = _maria(acme)
    factories.MembershipFactory(
        tenant=acme, user=factories.UserFactory(username="olivia"), role="owner"
    )
    real = contact_admin.contact_erase
    busy = [True]

    def erase(*, contact, dry_run=False):
        if busy and not dry_run:
            raise ContactBusyError()
        return real(contact=contact, dry_run=dry_run)

    monkeypatch.setattr(contact_admin, "contact_erase", erase)

    # when: the owner confirms the erasure
    log_in(page, "olivia")
    page.goto(f"/admin/conversations/contact/{contact.pk}/change/")
    page.click("#contact-erase")
    page.fill("#id_confirm", "ERASE")
    page.click("#erase-submit")

    # then: still on the erase page, told why nothing was erased and what to do
    expect(page.locator(".messagelist")).to_contain_text("being sent right now")
    expect(page.locator(".messagelist")).to_contain_text("Try again in a minute.")
    expect(page.locator("#erase-preview")).to_contain_text("Message texts emptied")
    page.screenshot(path="/tmp/contact-erase-busy.png", full_page=True)
    contact.refresh_from_db()
    assert contact.erased_at is None and contact.name == "Maria Silva"

    # and a minute later the same form erases her
    busy.clear()
    page.fill("#id_confirm", "ERASE")
    page.click("#erase-submit")
    expect(page.locator(".messagelist")).to_contain_text("Contact erased.")
    assert browser_problems.collect(page) == []
