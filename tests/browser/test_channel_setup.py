"""An owner sets up a Cloud API channel as a person would: picks the provider and sees only
its fields, makes a mistake and keeps the secrets typed, fixes it, copies the webhook URL and
sends a test message, which the (intercepted) Graph API accepts.

`responses` patches `requests` for the whole process, so it also intercepts the provider call
made by the live server's thread."""

import re

import pytest
import responses
from playwright.sync_api import Page, expect

from channels_app.models import ChannelInstance
from tests import factories

from .test_roles import log_in

pytestmark = pytest.mark.browser

ACCESS_TOKEN = "EAAG-browser-access-token"
APP_SECRET = "browser-app-secret-42"


def test_an_owner_sets_up_a_cloud_api_channel_and_sends_a_test(page: Page, browser_problems):
    # given: the owner of Acme Gym, logged in
    acme = factories.TenantFactory(name="Acme Gym")
    owner = factories.UserFactory(username="olivia")
    factories.MembershipFactory(tenant=acme, user=owner, role="owner")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    problems: list[str] = []
    log_in(page, "olivia", "pw-member-123456")

    # when: they open the tenant's channel add page and pick the Cloud API
    page.goto(f"/admin/channels_app/channelinstance/add/?tenant={acme.pk}")
    expect(page.locator(".field-account_sid")).to_be_hidden()  # nothing chosen yet
    page.select_option("#id_provider", "cloud_api")

    # then: only the Cloud API's fields show, and nothing for platform staff
    for name in ("phone_number_id", "business_account_id", "access_token", "app_secret"):
        expect(page.locator(f".field-{name}")).to_be_visible()
    for name in ("account_sid", "auth_token", "messaging_service_sid"):
        expect(page.locator(f".field-{name}")).to_be_hidden()
    expect(page.locator(".field-api_base_url")).to_have_count(0)
    expect(page.locator("[data-channel-provider-block=twilio]")).to_be_hidden()
    expect(page.locator("[data-channel-provider-block=cloud_api]")).to_be_visible()
    page.screenshot(path="/tmp/channel-setup-add.png", full_page=True)

    # when: they save without the phone number ID
    page.fill("#id_phone_number", "+14155550100")
    page.fill("#id_access_token", ACCESS_TOKEN)
    page.fill("#id_app_secret", APP_SECRET)
    page.get_by_role("button", name="Save and continue editing").click()

    # then: the error shows, the secrets are kept (not rendered back)
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".field-phone_number_id .errorlist")).to_contain_text("Required")
    expect(page.locator("#id_access_token")).to_have_attribute("placeholder", re.compile("kept"))
    expect(page.locator("#id_access_token")).to_have_value("")
    html = page.content()
    assert ACCESS_TOKEN not in html and APP_SECRET not in html
    expect(page.locator(".field-account_sid")).to_be_hidden()  # still the Cloud API's fields
    page.screenshot(path="/tmp/channel-setup-error.png", full_page=True)
    problems += browser_problems.collect(page)

    # when: they fill it in and save again, typing no secret
    page.fill("#id_phone_number_id", "106540352242922")
    page.fill("#id_business_account_id", "102290129340398")
    page.get_by_role("button", name="Save and continue editing").click()

    # then: the channel is stored with both secrets
    expect(page.locator(".messagelist .success")).to_be_visible()
    channel = ChannelInstance.objects.get(tenant=acme)
    assert channel.secrets == {"access_token": ACCESS_TOKEN, "app_secret": APP_SECRET}
    assert channel.settings == {
        "phone_number_id": "106540352242922",
        "business_account_id": "102290129340398",
    }

    # and the webhook URL is there to copy, with Meta's steps (the verify token not printed)
    url = page.locator("#channel-webhook-url")
    expect(url).to_have_value("https://chatai.example.com/api/webhooks/whatsapp")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator(".channel-copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == url.input_value()
    cloud_steps = page.locator("[data-channel-provider-block=cloud_api]")
    expect(cloud_steps).to_contain_text("ask the platform's staff")
    expect(page.locator(".channel-verify-token")).to_have_count(0)
    expect(page.locator("[data-channel-provider-block=twilio]")).to_be_hidden()
    page.screenshot(path="/tmp/channel-setup-saved.png", full_page=True)
    problems += browser_problems.collect(page)

    # when: they send a test message, which Meta accepts
    page.get_by_role("link", name="Send a test message").click()
    page.fill("#id_to_phone", "+14155550123")
    with responses.RequestsMock() as graph:
        graph.post(
            "https://graph.facebook.test/v22.0/106540352242922/messages",
            json={"messages": [{"id": "wamid.TEST123"}]},
        )
        page.get_by_role("button", name="Send the test message").click()
        # then: the provider's answer shows
        expect(page.locator(".channel-test-accepted")).to_contain_text("wamid.TEST123")
        assert graph.calls[0].request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    page.screenshot(path="/tmp/channel-setup-test-message.png", full_page=True)
    problems += browser_problems.collect(page)
    assert problems == []


def test_each_channel_on_the_tenant_page_shows_its_own_providers_fields(
    staff_page: Page, browser_problems
):
    # given: a tenant with a Twilio channel
    acme = factories.TenantFactory(name="Acme Gym")
    factories.TwilioChannelFactory(tenant=acme)
    page = staff_page

    # when: staff open the tenant's page
    page.goto(f"/admin/tenants/tenant/{acme.pk}/change/")
    first = page.locator("#channels-0")

    # then: the Twilio channel shows Twilio's fields only
    expect(first.locator(".field-auth_token")).to_be_visible()
    expect(first.locator(".field-access_token")).to_be_hidden()

    # when: they add another channel and pick the Cloud API for it
    page.locator("#channels-group .add-row a").click()
    second = page.locator("#channels-1")
    second.locator("select[name=channels-1-provider]").select_option("cloud_api")

    # then: the new one shows the Cloud API's fields, the first one is unchanged
    expect(second.locator(".field-access_token")).to_be_visible()
    expect(second.locator(".field-auth_token")).to_be_hidden()
    expect(first.locator(".field-auth_token")).to_be_visible()
    page.screenshot(path="/tmp/channel-setup-tenant-inline.png", full_page=True)
    assert browser_problems.collect(page) == []


def test_an_owner_sets_up_an_instagram_channel(page: Page, browser_problems):
    # given: the owner of Acme Gym, logged in
    acme = factories.TenantFactory(name="Acme Gym")
    owner = factories.UserFactory(username="olivia")
    factories.MembershipFactory(tenant=acme, user=owner, role="owner")
    log_in(page, "olivia", "pw-member-123456")

    # when: they pick Instagram
    page.goto(f"/admin/channels_app/channelinstance/add/?tenant={acme.pk}")
    page.select_option("#id_provider", "instagram")

    # then: only Instagram's inputs and steps show
    for name in ("instagram_account_id", "instagram_access_token", "instagram_app_secret"):
        expect(page.locator(f".field-{name}")).to_be_visible()
    for name in ("phone_number_id", "access_token", "account_sid"):
        expect(page.locator(f".field-{name}")).to_be_hidden()
    expect(page.locator("[data-channel-provider-block=instagram]")).to_be_visible()
    expect(page.locator("[data-channel-provider-block=cloud_api]")).to_be_hidden()

    # when: they give the account and its token, and save
    page.fill("#id_instagram_account_id", "17841400000000001")
    page.fill("#id_instagram_access_token", "IGAA-browser-token")
    page.get_by_role("button", name="Save and continue editing").click()

    # then: the channel is named by its account, with Instagram's own webhook URL
    channel = ChannelInstance.objects.get(tenant=acme)
    assert (channel.channel_type, channel.identifier, channel.phone_number) == (
        "instagram",
        "instagram:17841400000000001",
        "",
    )
    expect(page.locator(".channel-instagram-webhook-url")).to_contain_text(
        "/api/webhooks/instagram"
    )
    expect(page.locator(".channel-test-link")).to_have_count(0)
    page.screenshot(path="/tmp/channel-setup-instagram.png", full_page=True)
    assert browser_problems.collect(page) == []
