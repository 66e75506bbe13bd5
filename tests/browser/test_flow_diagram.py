"""The flow diagram as an owner uses it: open a flow version from the list, see its nodes and
arrows with the counts, pick another period, open the same numbers as a table, zoom a large
flow to fit and back."""

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from flows.models import FlowEvent, FlowEventKind
from flows.services import flow_create
from flows.tests.support import example, receive
from tests import factories

pytestmark = pytest.mark.browser

PASSWORD = "pw-member-123456"


def test_an_owner_reads_where_contacts_go(page: Page, browser_problems):
    # given: a flow three contacts went through, and one older visit
    acme = factories.TenantFactory(name="Acme Gym")
    channel = factories.TwilioChannelFactory(tenant=acme)
    flow = flow_create(tenant=acme, channel=channel, definition=example("fitness-welcome"))
    for replies in (["hi", "prices", "no"], ["hi", "prices"], ["hi", "trial"]):
        thread = factories.ThreadFactory(channel=channel)
        for text in replies:
            receive(thread, text)
    FlowEvent.objects.create(
        tenant=acme,
        flow=flow,
        session_id=uuid.uuid4(),
        kind=FlowEventKind.ENTERED,
        node_id="greet",
        created_at=timezone.now() - timedelta(days=20),
    )
    factories.MembershipFactory(
        tenant=acme, user=factories.UserFactory(username="olivia"), role="owner"
    )
    problems: list[str] = []

    # when: the owner opens the version from the flow list
    page.goto("/admin/login/?next=/admin/flows/flow/")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.get_by_role("link", name="fitness-welcome").click()

    # then: every node is a box, the start is marked, the arrows carry their counts
    diagram = page.locator("svg.flow-graph")
    expect(diagram).to_be_visible()
    expect(diagram.locator("g.node")).to_have_count(12)
    expect(diagram.locator("g.node--start")).to_contain_text("greet")
    expect(diagram.locator('[data-node="greet"] .count--entered')).to_have_text("4 in")
    expect(diagram.locator('[data-edge="menu choice:prices"] .edge__count')).to_have_text("2")
    expect(diagram.locator('[data-node="after_prices"]')).to_contain_text("1 waiting")
    expect(diagram.locator('[data-node="ask_day"]')).to_contain_text("1 waiting")
    expect(diagram.locator('[data-edge="menu timeout"]')).to_contain_text("no reply in 1 h")
    page.screenshot(path="/tmp/flow-diagram.png", full_page=True)
    problems += browser_problems.collect(page)

    # when: the owner narrows the period to a week and opens the table
    page.select_option("#id_days", "7")
    page.get_by_role("button", name="Show").click()
    page.get_by_text("The same numbers as a table").click()

    # then: the older visit is gone from the counts
    expect(page).to_have_url(re.compile(r"[?&]days=7"))
    expect(diagram.locator('[data-node="greet"] .count--entered')).to_have_text("3 in")
    row = page.locator('#flow-counts tr[data-node="after_prices"]')
    expect(row).to_be_visible()
    expect(row.locator("td").nth(1)).to_have_text("1")  # waiting now
    expect(row).to_contain_text("No → bye: 1")
    problems += browser_problems.collect(page)
    assert problems == []


def test_a_large_flow_fits_the_page_on_demand(page: Page, browser_problems):
    # given: a flow of 60 questions, taller than the page
    acme = factories.TenantFactory(name="Acme Gym")
    channel = factories.TwilioChannelFactory(tenant=acme)
    nodes = [
        {
            "id": f"q{index}",
            "type": "question",
            "text": f"Step {index}?",
            "choices": [
                {"id": "a", "label": "A", "next": f"q{index + 1}" if index < 59 else "end"},
                {"id": "b", "label": "B", "next": "end"},
            ],
        }
        for index in range(60)
    ]
    nodes.append({"id": "end", "type": "end"})
    flow = flow_create(
        tenant=acme,
        channel=channel,
        definition={
            "schema_version": 1,
            "flow_id": "long",
            "name": "Long",
            "start": "q0",
            "nodes": nodes,
        },
    )
    factories.MembershipFactory(
        tenant=acme, user=factories.UserFactory(username="olivia"), role="owner"
    )
    page.goto(f"/admin/login/?next=/admin/flows/flow/{flow.pk}/change/")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    canvas = page.locator(".flow-diagram__canvas")
    diagram = page.locator("svg.flow-graph")
    actual = diagram.bounding_box()
    assert actual is not None

    # when: the owner fits it to the page, then goes back to the actual size
    page.get_by_role("button", name="Fit to page").click()
    fitted = diagram.bounding_box()
    page.get_by_role("button", name="Actual size").click()

    # then
    assert fitted is not None and fitted["height"] < actual["height"]
    canvas_box = canvas.bounding_box()
    assert canvas_box is not None and fitted["height"] <= canvas_box["height"]
    assert diagram.bounding_box() == actual
    assert browser_problems.collect(page) == []
