"""The Content-Security-Policy holds on every page a person uses, and the pages still work under
it: in Chromium, the admin, the browsable API and Swagger UI run their scripts and styles with
no violation and no console error."""

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from flows.services import flow_create
from tests import factories

EXAMPLES = Path(__file__).resolve().parents[2] / "flows" / "examples"


def fitness_flow() -> dict:
    return json.loads((EXAMPLES / "fitness-welcome.json").read_text())


pytestmark = pytest.mark.browser


def policy_of(response) -> dict[str, str]:
    header = response.headers["content-security-policy"]
    directives = (part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    return {name: value for name, value in directives}


def test_the_admin_runs_under_the_policy(staff_page: Page, browser_problems):
    # given
    tenant = factories.TenantFactory(name="Acme Gym")
    channel = factories.TwilioChannelFactory(tenant=tenant)
    thread = factories.ThreadFactory(channel=channel)
    factories.MessageFactory(thread=thread)
    flow = flow_create(tenant=tenant, channel=channel, definition=fitness_flow())
    page = staff_page
    problems: list[str] = []

    # when / then: the index, styled by the admin's stylesheet
    response = page.goto("/admin/")
    assert response is not None
    assert policy_of(response)["script-src"] == "'self'"
    expect(page.locator("#site-name")).to_have_text("chatai staff")
    assert page.locator("#header").evaluate("e => getComputedStyle(e).display") == "flex"
    page.screenshot(path="/tmp/csp-admin-index.png", full_page=True)
    problems += browser_problems.collect(page)

    # a changelist: actions.js counts the selected rows
    page.goto("/admin/tenants/tenant/")
    expect(page.locator("#result_list")).to_contain_text("Acme Gym")
    page.check("#action-toggle")
    expect(page.locator(".action-counter")).to_contain_text("1 of 1 selected")
    problems += browser_problems.collect(page)

    # the change form of a tenant, with its inlines and collapsed fieldset
    page.goto(f"/admin/tenants/tenant/{tenant.pk}/change/")
    expect(page.locator("#id_name")).to_have_value("Acme Gym")
    page.locator("fieldset.collapse summary").click()
    expect(page.locator("fieldset.collapse .field-id")).to_be_visible()
    problems += browser_problems.collect(page)

    # the add form: prepopulate.js fills the slug, inlines.js adds a channel row
    page.goto("/admin/tenants/tenant/add/")
    page.locator("#id_name").press_sequentially("New Studio")
    expect(page.locator("#id_slug")).to_have_value("new-studio")
    page.locator("#channels-group .add-row a").click()
    expect(page.locator("#channels-group .inline-related:not(.empty-form)")).to_have_count(1)
    expect(page.locator("#id_channels-TOTAL_FORMS")).to_have_value("1")
    problems += browser_problems.collect(page)

    # changelists with filters and a date hierarchy, and the staff inbox of a thread
    page.goto("/admin/conversations/message/")
    page.locator("#changelist-filter a", has_text="Inbound").first.click()
    expect(page).to_have_url(re.compile(r"direction__exact=inbound"))
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    problems += browser_problems.collect(page)
    page.goto("/admin/flows/flowsession/")
    expect(page.locator("#changelist")).to_be_visible()
    problems += browser_problems.collect(page)
    page.goto(f"/admin/conversations/chatthread/{thread.pk}/change/")  # leads to the inbox
    expect(page.locator("#timeline")).to_contain_text("hello number")
    assert page.locator(".conversation-main").evaluate("e => e.offsetWidth") > 500
    problems += browser_problems.collect(page)

    # a flow, its nodes and the upload form: the project's own admin pages
    page.goto(f"/admin/flows/flow/{flow.pk}/change/")
    definition = page.locator("pre.flow-definition")
    expect(definition).to_contain_text('"flow_id"')
    assert definition.evaluate("e => getComputedStyle(e).overflow") == "auto"
    page.goto(f"/admin/flows/flow/{flow.pk}/nodes/")
    expect(page.locator("#flow-nodes tbody tr").first).to_be_visible()
    problems += browser_problems.collect(page)
    page.goto("/admin/flows/flow/upload/")
    expect(page.locator("#content-main form")).to_be_visible()
    problems += browser_problems.collect(page)

    assert not problems, "\n".join(problems)


def test_the_browsable_api_runs_under_the_policy(staff_page: Page, browser_problems):
    # given
    factories.TenantFactory(name="Acme Gym")
    page = staff_page
    problems: list[str] = []

    # when / then
    page.goto("/api/")
    expect(page.locator(".response-info")).to_contain_text('"tenants"')
    problems += browser_problems.collect(page)

    page.goto("/api/tenants/")
    expect(page.locator(".response-info")).to_contain_text("Acme Gym")
    expect(page.locator(".navbar")).to_contain_text("browser-admin")
    # bootstrap's scripts: the format menu opens; the API takes JSON only, so the POST form is
    # the raw JSON one
    page.locator(".format-selection .dropdown-toggle").click()
    expect(page.locator(".format-selection .dropdown-menu")).to_be_visible()
    expect(page.locator("#post-generic-content-form textarea")).to_be_visible()
    expect(page.locator("#post-generic-content-form select[name=_content_type]")).to_have_value(
        "application/json"
    )
    page.screenshot(path="/tmp/csp-api-tenants.png", full_page=False)
    problems += browser_problems.collect(page)

    assert not problems, "\n".join(problems)


def test_swagger_ui_renders_the_operations_under_the_policy(page: Page, browser_problems):
    # when
    response = page.goto("/api/docs/")

    # then: Swagger UI's scripts ran and drew the operations from the schema
    assert response is not None and response.ok
    assert policy_of(response)["style-src"] == "'self'"
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/tenants/").first).to_be_visible()
    page.screenshot(path="/tmp/csp-api-docs.png", full_page=False)
    # and an operation opens, with its parameters and "Try it out"
    page.locator(".opblock-summary", has_text="/api/tenants/{tenant}/").first.click()
    expect(page.locator(".opblock.is-open .try-out__btn")).to_be_visible()
    expect(page.locator(".opblock.is-open .parameters")).to_contain_text("tenant")
    problems = browser_problems.collect(page)
    assert not problems, "\n".join(problems)


def test_every_kind_of_response_carries_the_policy(page: Page):
    # the JSON API (an error answer too), a webhook and the health check
    for path in ("/api/tenants/", "/api/no-such-thing", "/api/webhooks/whatsapp", "/healthz"):
        response = page.request.get(path)
        policy = policy_of(response)
        assert policy["default-src"] == "'self'", path
        assert policy["frame-ancestors"] == "'none'", path
