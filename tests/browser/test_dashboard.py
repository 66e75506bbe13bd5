"""The dashboard as an owner meets it, in Chromium under the Content-Security-Policy: the first
page after logging in, with the chart and the numbers; another period; the tooltip of a day;
and the way from the waiting number to the inbox's waiting conversations."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from conversations.models import Handoff, Message
from flows.models import Flow, FlowSession
from tests import factories

pytestmark = pytest.mark.browser


@pytest.fixture
def gym(transactional_db):
    """An owner's tenant with two conversations waiting (the oldest for 2 h 14 min), messages
    today and forty days ago, and a flow with one completed and one handed-off session."""
    now = timezone.now()
    tenant = factories.TenantFactory(name="Acme Gym")
    channel = factories.TwilioChannelFactory(tenant=tenant)
    waiting = [
        factories.ThreadFactory(channel=channel, needs_human=True, contact__name=name)
        for name in ("Maria Silva", "Alex Chen")
    ]
    for thread, minutes in zip(waiting, (134.5, 20), strict=True):
        Handoff.objects.create(
            tenant=tenant,
            thread=thread,
            source="flow",
            started_at=now - timedelta(minutes=minutes),
        )
    for days_ago, direction in [(0, "inbound"), (0, "inbound"), (0, "outbound"), (40, "inbound")]:
        Message.objects.create(
            tenant=tenant,
            thread=waiting[0],
            channel=channel,
            direction=direction,
            status="received" if direction == "inbound" else "sent",
            sender="contact" if direction == "inbound" else "flow",
            created_at=now - timedelta(days=days_ago),
        )
    flow = Flow.objects.create(
        tenant=tenant, channel=channel, flow_id="welcome", version=1, name="Welcome", definition={}
    )
    for handed_off in (False, True):
        FlowSession.objects.create(
            tenant=tenant,
            thread=waiting[0],
            flow=flow,
            status="completed",
            handed_off=handed_off,
            variables={},
        )
    factories.UserFactory(username="owner-ana")
    factories.MembershipFactory(
        tenant=tenant, user=factories.UserFactory(username="owner-ana"), role="owner"
    )
    return tenant


def test_an_owner_reads_the_dashboard_changes_the_period_and_opens_the_queue(
    page: Page, gym, browser_problems
):
    # given: the owner logs in
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "owner-ana")
    page.fill("#id_password", "pw-member-123456")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")

    # then: the dashboard is the first page, on their tenant, over 30 days
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator(".dash-scope")).to_contain_text("Acme Gym")
    expect(page.locator("#kpi-waiting")).to_have_text("2 waiting · oldest 2 h 14 min")
    expect(page.locator("#kpi-messages")).to_have_text("2 in · 1 out")
    chart = page.locator("#messages-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("g.chart-day")).to_have_count(30)
    expect(page.locator(".dash-periods a.selected")).to_have_text("30 days")
    welcome = page.locator('tr[data-flow="welcome"]')
    expect(welcome.locator('[data-key="completed"]')).to_have_text("1")
    expect(welcome.locator('[data-key="handed_off"]')).to_have_text("1")
    # the bars are drawn and styled by the stylesheet (no inline style anywhere)
    bar = chart.locator("rect.chart-in").last
    assert float(bar.get_attribute("height") or 0) > 0
    assert bar.evaluate("e => getComputedStyle(e).fill") == "rgb(65, 118, 144)"
    # and today's column tells its numbers on hover
    today = chart.locator("g.chart-day").last
    expect(today.locator("title")).to_have_text(re.compile(r": 2 in · 1 out$"))
    page.set_viewport_size({"width": 1440, "height": 1000})
    today.hover()
    page.screenshot(path="/tmp/dashboard-owner.png", full_page=True)
    problems = browser_problems.collect(page)

    # when: the period goes to 90 days
    page.get_by_role("link", name="90 days").click()
    page.wait_for_url(re.compile(r"days=90"))

    # then: the old message counts, drawn as lines
    expect(page.locator("#kpi-messages")).to_have_text("3 in · 1 out")
    expect(page.locator("#messages-chart g.chart-day")).to_have_count(90)
    expect(page.locator("#messages-chart polyline.chart-line-in")).to_have_count(1)
    expect(page.locator(".dash-periods a.selected")).to_have_text("90 days")
    page.screenshot(path="/tmp/dashboard-owner-90.png", full_page=True)
    problems += browser_problems.collect(page)

    # when: they follow the waiting number
    page.get_by_role("link", name="Open the waiting conversations →").click()

    # then: the inbox, on the conversations waiting for a human
    page.wait_for_url("**/admin/inbox/?needs_human=1")
    expect(page.locator(".inbox-tabs a.selected")).to_have_text("Needs a human")
    expect(page.locator(".inbox-row")).to_have_count(2)
    problems += browser_problems.collect(page)
    assert problems == []
