"""Roles as people meet them: an owner invites an agent from the admin, the agent opens the
one-time link, creates an account there, and sees their tenant's conversations and nothing of
another tenant's, with no member management; a viewer reads a conversation without a reply
box."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests import factories

pytestmark = pytest.mark.browser


def log_in(page: Page, username: str, password: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def test_an_owner_invites_an_agent_who_sees_only_their_tenant(page: Page, browser_problems):
    # given: an owner of Acme, with a conversation there, and another tenant's conversation
    acme = factories.TenantFactory(name="Acme Gym")
    other = factories.TenantFactory(name="Other Clinic")
    ours = factories.ThreadFactory(
        channel=factories.TwilioChannelFactory(tenant=acme),
        contact=factories.ContactFactory(tenant=acme, name="Marta Acme"),
    )
    factories.ThreadFactory(
        channel=factories.TwilioChannelFactory(tenant=other),
        contact=factories.ContactFactory(tenant=other, name="Rui Other"),
    )
    owner = factories.UserFactory(username="olivia")
    factories.MembershipFactory(tenant=acme, user=owner, role="owner")
    problems: list[str] = []

    # when: the owner logs in and invites a new agent
    log_in(page, "olivia", "pw-member-123456")
    expect(page.locator("#site-name")).to_have_text("chatai staff")
    page.get_by_role("link", name="Invitations").first.click()
    page.get_by_role("link", name=re.compile("Add invitation")).click()
    page.select_option("#id_tenant", label="Acme Gym")
    page.fill("#id_email", "alex@example.com")
    page.select_option("#id_role", "agent")
    page.get_by_role("button", name="Save", exact=True).click()

    # then: the one-time link is shown once
    notice = page.locator(".messagelist .warning")
    expect(notice).to_contain_text("one-time link")
    page.screenshot(path="/tmp/roles-invite.png", full_page=True)
    link = re.search(r"https?://\S+/accounts/invite/\S+/", notice.inner_text()).group(0)
    problems += browser_problems.collect(page)
    page.context.clear_cookies()

    # when: the agent opens the link and creates an account there
    page.goto(re.sub(r"^https?://[^/]+", "", link))
    expect(page.locator("#content")).to_contain_text("invited to Acme Gym as agent")
    page.screenshot(path="/tmp/roles-accept.png", full_page=True)
    page.fill("#id_username", "alex")
    page.fill("#id_first_name", "Alex")
    page.fill("#id_password1", "Agent-pass-2468")
    page.fill("#id_password2", "Agent-pass-2468")
    page.get_by_role("button", name="Create account and join").click()

    # then: they land in the admin, logged in, welcomed to the tenant
    expect(page.locator(".messagelist")).to_contain_text("You are now a member of Acme Gym")
    expect(page.locator("#user-tools")).to_contain_text("Alex")
    problems += browser_problems.collect(page)

    # then: conversations of Acme only, and no member management
    expect(page.locator("#content-main")).not_to_contain_text("Members")
    page.goto("/admin/conversations/chatthread/")
    expect(page.locator("#result_list")).to_contain_text("Marta Acme")
    expect(page.locator("#result_list")).not_to_contain_text("Rui Other")
    page.screenshot(path="/tmp/roles-agent-threads.png", full_page=True)
    problems += browser_problems.collect(page)

    # and the agent may answer the conversation
    page.goto(f"/admin/conversations/chatthread/{ours.pk}/change/")
    expect(page.get_by_role("button", name=re.compile("Send reply"))).to_be_visible()
    problems += browser_problems.collect(page)
    assert problems == []


def test_a_viewer_reads_a_conversation_without_a_reply_box(page: Page, browser_problems):
    acme = factories.TenantFactory(name="Acme Gym")
    thread = factories.ThreadFactory(channel=factories.TwilioChannelFactory(tenant=acme))
    factories.MessageFactory(thread=thread)
    viewer = factories.UserFactory(username="vic")
    factories.MembershipFactory(tenant=acme, user=viewer, role="viewer")

    log_in(page, "vic", "pw-member-123456")
    page.goto(f"/admin/conversations/chatthread/{thread.pk}/change/")
    expect(page.locator("#content")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Send reply"))).to_have_count(0)
    page.screenshot(path="/tmp/roles-viewer-thread.png", full_page=True)
    assert browser_problems.collect(page) == []
