"""The way in, as people meet it: the landing page at `/` and the admin index (the dashboard,
beside the sections with the inbox and its count first), in Chromium, under the
Content-Security-Policy, with no violation."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests import factories

pytestmark = pytest.mark.browser


def test_the_landing_page_greets_visitors(page: Page, browser_problems):
    # given: a visitor
    response = page.goto("/")

    # then: what chatai is, and the ways in, styled by its stylesheet
    assert response is not None and response.status == 200
    expect(page.locator("h1")).to_have_text("Your WhatsApp inbox, answered.")
    expect(page.get_by_role("link", name="Staff sign in")).to_have_attribute("href", "/admin/")
    expect(page.get_by_role("link", name="API docs", exact=True)).to_have_attribute(
        "href", "/api/docs/"
    )
    expect(page.get_by_role("link", name="Health", exact=True)).to_have_attribute(
        "href", "/healthz"
    )
    expect(page.get_by_role("link", name="Go to the inbox")).to_have_count(0)
    assert page.locator(".hero").evaluate("e => getComputedStyle(e).borderRadius") == "20px"
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path="/tmp/landing.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path="/tmp/landing-mobile.png", full_page=True)
    assert browser_problems.collect(page) == []


def test_the_landing_page_takes_signed_in_staff_to_the_inbox(staff_page: Page, browser_problems):
    staff_page.goto("/")
    inbox = staff_page.get_by_role("link", name="Go to the inbox")
    expect(inbox).to_be_visible()
    staff_page.screenshot(path="/tmp/landing-signed-in.png", full_page=True)
    inbox.click()
    expect(staff_page).to_have_url(
        re.compile(r"/admin/(inbox/|conversations/chatthread/\?needs_human)")
    )
    assert browser_problems.collect(staff_page) == []


def test_the_index_leads_with_the_inbox_and_its_count(page: Page, browser_problems):
    # given: an agent of a tenant with two conversations waiting, another tenant with one
    acme = factories.TenantFactory(name="Acme Gym")
    channel = factories.TwilioChannelFactory(tenant=acme)
    for _ in range(2):
        factories.ThreadFactory(channel=channel, needs_human=True)
    factories.ThreadFactory(
        channel=factories.TwilioChannelFactory(tenant=factories.TenantFactory()),
        needs_human=True,
    )
    agent = factories.UserFactory(username="ana")
    factories.MembershipFactory(tenant=acme, user=agent, role="agent")

    # when: the agent logs in
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "ana")
    page.fill("#id_password", "pw-member-123456")
    page.click("input[type=submit]")

    # then: the dashboard, beside the inbox first, with their tenant's count only, and no
    # security tables
    expect(page.locator("#content-main h1")).to_have_text("Dashboard")
    modules = page.locator("#nav-sidebar .module caption")
    expect(modules).to_have_text(["Inbox", "Conversations", "Flows", "Channels", "Tenants"])
    badge = page.locator("#nav-sidebar .app-inbox .count-badge")
    expect(badge).to_have_text("2")
    color = badge.evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(255, 255, 255)"
    page.screenshot(path="/tmp/admin-index-agent.png", full_page=True)
    problems = browser_problems.collect(page)

    # and the sidebar of another page carries the same list
    page.goto("/admin/tenants/tenant/")
    expect(page.locator("#nav-sidebar .app-inbox .count-badge")).to_have_text("2")
    page.screenshot(path="/tmp/admin-sidebar-agent.png", full_page=True)
    problems += browser_problems.collect(page)
    assert problems == []


def test_staff_see_security_last(staff_page: Page, browser_problems):
    staff_page.goto("/admin/")
    modules = staff_page.locator("#nav-sidebar .module caption")
    expect(modules).to_have_text(
        ["Inbox", "Conversations", "Flows", "Channels", "Integrations", "Tenants", "Security"]
    )
    staff_page.screenshot(path="/tmp/admin-index-staff.png", full_page=True)
    assert browser_problems.collect(staff_page) == []
