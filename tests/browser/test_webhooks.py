"""Webhook endpoints in the admin, as an owner meets them: adding one shows its signing secret
once; a switched-off endpoint is flagged on the index, in the list and on its page. Under the
Content-Security-Policy, with no violation."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from integrations.models import WebhookEndpoint
from tests import factories

pytestmark = pytest.mark.browser


def test_adding_an_endpoint_shows_its_secret_once(staff_page: Page, browser_problems):
    # given: a tenant
    tenant = factories.TenantFactory(name="Acme Fitness")
    # when: staff add an endpoint (an address literal: no name resolves in the tests)
    staff_page.goto("/admin/integrations/webhookendpoint/add/")
    staff_page.select_option("#id_tenant", label="Acme Fitness")
    staff_page.fill("#id_url", "https://93.184.216.34/chatai/hooks")
    staff_page.fill("#id_description", "CRM")
    staff_page.get_by_label("A message arrived").check()
    staff_page.get_by_label("A contact opted out").check()
    staff_page.set_viewport_size({"width": 1280, "height": 900})
    staff_page.screenshot(path="/tmp/webhook-add.png", full_page=True)
    staff_page.get_by_role("button", name="Save", exact=True).click()

    # then: the secret, once, in the message; the list shows the new endpoint
    endpoint = WebhookEndpoint.objects.get(tenant=tenant)
    message = staff_page.locator(".messagelist .warning")
    expect(message).to_contain_text(endpoint.secret)
    assert re.search(r"whsec_[\w-]{43}", message.inner_text())
    expect(staff_page.locator("#result_list")).to_contain_text(
        "message.received, contact.opted_out"
    )
    staff_page.screenshot(path="/tmp/webhook-created.png", full_page=True)
    staff_page.reload()
    expect(staff_page.locator("body")).not_to_contain_text(endpoint.secret)
    assert browser_problems.collect(staff_page) == []


def test_a_switched_off_endpoint_is_flagged_everywhere(staff_page: Page, browser_problems):
    tenant = factories.TenantFactory(name="Acme Fitness")
    endpoint = factories.WebhookEndpointFactory(
        tenant=tenant,
        url="https://hooks.example.com/chatai",
        is_active=False,
        disabled_at=timezone.now(),
        failing_since=timezone.now() - timezone.timedelta(days=1),
        disabled_reason="Switched off: every delivery failed for 24 hours (since 2026-12-01 "
        "12:00 UTC; last: HTTP 500). Fix the receiver, then switch the endpoint on again.",
    )
    factories.webhook_with_delivery(tenant, url="https://crm.example.org/in")
    from integrations.models import WebhookAttempt, WebhookDelivery

    delivery = WebhookDelivery.objects.create(
        tenant=tenant,
        endpoint=endpoint,
        event_id="0b8f3c1e-7d7c-4d43-9a2e-5f0c1b7b8e11",
        event="message.received",
        occurred_at=timezone.now(),
        give_up_at=timezone.now(),
        status="failed",
        attempts=1,
        last_status_code=500,
        last_error="http_status",
    )
    WebhookAttempt.objects.create(
        tenant=tenant,
        delivery=delivery,
        number=1,
        status_code=500,
        error="http_status",
        duration_ms=184,
        response_snippet="Internal Server Error",
    )

    staff_page.set_viewport_size({"width": 1280, "height": 900})
    staff_page.goto("/admin/")
    expect(staff_page.locator(".app-notice")).to_have_text("1 switched off")
    staff_page.screenshot(path="/tmp/webhook-index.png", full_page=True)

    staff_page.goto("/admin/integrations/webhookendpoint/")
    off = staff_page.locator(".webhook-health-off")
    expect(off).to_have_text("switched off")
    assert off.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
    staff_page.screenshot(path="/tmp/webhook-list.png", full_page=True)

    staff_page.goto(f"/admin/integrations/webhookendpoint/{endpoint.pk}/change/")
    expect(staff_page.locator(".messagelist .error")).to_contain_text(
        "every delivery failed for 24 hours"
    )
    staff_page.screenshot(path="/tmp/webhook-switched-off.png", full_page=True)

    # and its deliveries are one click away, each with its attempts
    staff_page.get_by_role("link", name="Its deliveries and their attempts").click()
    expect(staff_page.locator("#result_list tbody tr")).to_have_count(1)
    staff_page.locator("#result_list tbody tr th a").click()
    expect(staff_page.locator(".inline-group")).to_contain_text("http_status")
    staff_page.screenshot(path="/tmp/webhook-delivery.png", full_page=True)
    assert browser_problems.collect(staff_page) == []
