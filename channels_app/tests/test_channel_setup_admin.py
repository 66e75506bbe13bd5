"""Setting a channel up in the admin: one field per provider setting, write-only secrets kept
across a failed validation, the webhook URL with the provider's steps, and a test message."""

import logging
import re

import pytest
import responses
from django.test import Client
from django.urls import reverse

from channels_app.forms import KEPT_SUFFIX, ChannelForm, seal_secret
from channels_app.models import ChannelInstance
from channels_app.services import TEST_SENDS_PER_WINDOW
from conversations.models import ChatThread, Contact, Message
from tests import factories

from .webhook_support import load

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:channels_app_channelinstance_add")
SID = "AC11111111111111111111111111111111"
TWILIO_MESSAGES = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"
TO = "+14155550123"


def change_url(channel):
    return reverse("admin:channels_app_channelinstance_change", args=[channel.pk])


def message_url(channel):
    return reverse("admin:channels_app_channelinstance_test_message", args=[channel.pk])


def channel_form(tenant=None, **overrides):
    """What the channel page posts (every provider's fields, as without JavaScript)."""
    data = {
        "provider": "cloud_api",
        "identifier": "",
        "phone_number": "+14155550100",
        "is_active": "on",
        "account_sid": "",
        "auth_token": "",
        "messaging_service_sid": "",
        "phone_number_id": "106540352242922",
        "business_account_id": "",
        "access_token": "EAAG-typed-token",
        "app_secret": "typed-app-secret",
    }
    if tenant is not None:
        data["tenant"] = str(tenant.pk)
    data.update(overrides)
    return data


@pytest.fixture
def owner_client(tenant, member):
    client = Client()
    client.force_login(member(tenant, "owner"))
    return client


# -- the form: only the chosen provider's fields -----------------------------------------------


def test_a_cloud_api_channel_is_built_from_its_fields_with_its_app_secret(tenant, owner_client):
    # when: an owner saves a Cloud API channel (Twilio's fields filled in too, as leftovers)
    response = owner_client.post(
        ADD_URL,
        channel_form(
            tenant, business_account_id="102290129340398", account_sid="AC999", auth_token="x"
        ),
    )

    # then: the settings come from the Cloud API's fields only, every secret is stored
    assert response.status_code == 302, response.content.decode()[:3000]
    channel = ChannelInstance.objects.get(tenant=tenant)
    assert channel.identifier == "whatsapp:+14155550100"
    assert channel.settings == {
        "phone_number_id": "106540352242922",
        "business_account_id": "102290129340398",
    }
    assert channel.phone_number_id == "106540352242922"
    assert channel.secrets == {"access_token": "EAAG-typed-token", "app_secret": "typed-app-secret"}


def test_a_twilio_channel_ignores_the_cloud_api_fields(tenant, owner_client):
    response = owner_client.post(
        ADD_URL,
        channel_form(
            tenant,
            provider="twilio",
            account_sid=SID,
            auth_token="tw-token",
            messaging_service_sid="MG123",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    channel = ChannelInstance.objects.get(tenant=tenant)
    assert channel.settings == {"messaging_service_sid": "MG123"}
    assert channel.secrets == {"account_sid": SID, "auth_token": "tw-token"}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"phone_number_id": ""}, "phone_number_id", "Required for the Cloud API."),
        ({"access_token": ""}, "access_token", "Required for the Cloud API."),
        ({"provider": "twilio", "account_sid": SID}, "auth_token", "Set both"),
        ({"provider": "twilio", "account_sid": "XX1", "auth_token": "t"}, "account_sid", "AC"),
        ({"phone_number": "4155550100"}, "phone_number", "E.164"),
        ({"provider": "telegram"}, "provider", "valid choice"),
    ],
)
def test_each_provider_is_validated_on_the_server(tenant, owner_client, overrides, field, message):
    response = owner_client.post(ADD_URL, channel_form(tenant, **overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors.get(field, [])), errors
    assert not ChannelInstance.objects.exists()


def test_a_phone_number_id_in_use_is_shown_on_its_field(tenant, owner_client):
    factories.CloudChannelFactory(settings={"phone_number_id": "106540352242922"})
    response = owner_client.post(ADD_URL, channel_form(tenant))
    errors = response.context["adminform"].form.errors
    assert "already uses" in errors["phone_number_id"][0]


def test_the_identifier_help_shows_its_angle_bracket_free_example(owner_client):
    body = owner_client.get(ADD_URL).content.decode()
    assert "“whatsapp:” followed by the phone number, e.g. whatsapp:+14155238886" in body


# -- secrets: write-only, kept on edit and across a failed validation --------------------------


def test_secrets_typed_into_a_failed_form_are_kept_without_being_rendered(tenant, owner_client):
    # given: a first attempt that fails for another reason (no phone number ID)
    first = owner_client.post(ADD_URL, channel_form(tenant, phone_number_id=""))
    body = first.content.decode()
    assert first.status_code == 200
    assert "EAAG-typed-token" not in body and "typed-app-secret" not in body
    kept = dict(re.findall(r'name="(\w+__kept)" value="([^"]+)"', body))
    assert set(kept) == {"access_token__kept", "app_secret__kept"}
    assert "kept from your last try" in body

    # when: the second attempt fixes it and types no secret (the browser posts the kept ones)
    second = owner_client.post(
        ADD_URL, {**channel_form(tenant, access_token="", app_secret=""), **kept}
    )

    # then: the secrets of the first attempt are stored
    assert second.status_code == 302, second.content.decode()[:3000]
    channel = ChannelInstance.objects.get(tenant=tenant)
    assert channel.secrets == {"access_token": "EAAG-typed-token", "app_secret": "typed-app-secret"}


def test_a_kept_secret_is_only_good_for_its_user_and_field(tenant, member):
    # given: a token sealed for another user
    someone_else = member(tenant, "owner")
    me = member(tenant, "owner")
    client = Client()
    client.force_login(me)
    forged = seal_secret("stolen", scope=f"{someone_else.pk}:new::access_token")
    garbage = "not-a-token"

    # when
    for token in (forged, garbage):
        response = client.post(
            ADD_URL, {**channel_form(tenant, access_token=""), "access_token" + KEPT_SUFFIX: token}
        )

        # then: refused, asking to type it again; nothing stored
        errors = response.context["adminform"].form.errors
        assert "type it again" in errors["access_token"][0]
    assert not ChannelInstance.objects.exists()


def test_a_kept_secret_expires(tenant, owner_client, settings, monkeypatch):
    first = owner_client.post(ADD_URL, channel_form(tenant, phone_number_id=""))
    kept = dict(re.findall(r'name="(\w+__kept)" value="([^"]+)"', first.content.decode()))
    monkeypatch.setattr("channels_app.forms.KEPT_SECRET_MAX_AGE", -1)
    response = owner_client.post(ADD_URL, {**channel_form(tenant, access_token=""), **kept})
    assert "type it again" in response.context["adminform"].form.errors["access_token"][0]


def test_editing_keeps_empty_secrets_and_switching_provider_drops_the_old_ones(
    owner_client, tenant
):
    # given: a Twilio channel
    channel = factories.TwilioChannelFactory(
        tenant=tenant, secrets={"account_sid": SID, "auth_token": "tw-old-token"}
    )
    page = owner_client.get(change_url(channel)).content.decode()
    assert "tw-old-token" not in page and SID not in page
    assert "set; leave empty to keep" in page

    # when: it becomes a Cloud API channel
    response = owner_client.post(
        change_url(channel),
        channel_form(
            provider="cloud_api",
            identifier=channel.identifier,
            phone_number=channel.phone_number,
            app_secret="",
        ),
    )

    # then: only the Cloud API's secrets remain
    assert response.status_code == 302, response.content.decode()[:3000]
    channel.refresh_from_db()
    assert channel.secrets == {"access_token": "EAAG-typed-token"}

    # and an edit that types no secret keeps them
    response = owner_client.post(
        change_url(channel),
        channel_form(
            identifier=channel.identifier,
            phone_number=channel.phone_number,
            access_token="",
            app_secret="",
        ),
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.secrets == {"access_token": "EAAG-typed-token"}


def test_only_platform_staff_set_the_api_base_url(tenant, owner_client, admin_client):
    # given: a channel pointed elsewhere by platform staff
    channel = factories.CloudChannelFactory(
        tenant=tenant,
        settings={"phone_number_id": "106540352242922", "api_base_url": "https://proxy.test"},
    )
    data = channel_form(
        identifier=channel.identifier,
        phone_number=channel.phone_number,
        api_base_url="https://evil.test",
    )

    # when: an owner posts another URL, the field is neither shown nor taken; the old one stays
    assert "api_base_url" not in owner_client.get(change_url(channel)).content.decode()
    assert owner_client.post(change_url(channel), data).status_code == 302
    channel.refresh_from_db()
    assert channel.settings["api_base_url"] == "https://proxy.test"

    # when: platform staff change it, it changes
    page = admin_client.get(change_url(channel)).content.decode()
    assert 'name="api_base_url"' in page
    assert admin_client.post(change_url(channel), data).status_code == 302
    channel.refresh_from_db()
    assert channel.settings["api_base_url"] == "https://evil.test"


def test_the_form_works_without_the_admin(tenant):
    form = ChannelForm(data=channel_form(provider="twilio", account_sid="", auth_token=""))
    assert form.is_valid(), form.errors
    channel = form.save_through_services(tenant=tenant)
    assert channel.settings == {} and channel.secrets == {}


# -- the webhook URL and the provider's steps --------------------------------------------------


def test_the_channel_page_shows_the_webhook_url_and_hides_the_verify_token(
    tenant, owner_client, admin_client, settings
):
    channel = factories.CloudChannelFactory(tenant=tenant)
    url = "https://chatai.example.com/api/webhooks/whatsapp"

    page = owner_client.get(change_url(channel)).content.decode()
    assert f'value="{url}"' in page
    assert "A message comes in" in page and "Callback URL" in page
    assert settings.META_VERIFY_TOKEN not in page
    assert "ask the platform's staff" in page
    assert message_url(channel) in page

    staff_page = admin_client.get(change_url(channel)).content.decode()
    assert f'<code class="channel-verify-token">{settings.META_VERIFY_TOKEN}</code>' in staff_page


def test_viewers_see_the_webhook_url_but_no_test_message_link(tenant, member):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    client = Client()
    client.force_login(member(tenant, "viewer"))
    page = client.get(change_url(channel)).content.decode()
    assert "/api/webhooks/whatsapp" in page
    assert message_url(channel) not in page


# -- "Send a test message" ---------------------------------------------------------------------


@responses.activate
def test_an_owner_sends_a_test_message_through_twilio(tenant, owner_client, caplog):
    # given
    channel = factories.TwilioChannelFactory(tenant=tenant)
    created = load("twilio/messages_create_201.json")
    responses.post(TWILIO_MESSAGES, json={**created, "sid": "SMtest0001"}, status=201)
    caplog.set_level(logging.DEBUG)

    # when
    response = owner_client.post(message_url(channel), {"to_phone": TO})

    # then: Twilio was asked once, from the channel to the number; its id shows
    assert response.status_code == 200
    assert "Accepted by Twilio" in response.content.decode()
    assert "SMtest0001" in response.content.decode()
    (call,) = responses.calls
    assert f"To=whatsapp%3A%2B{TO[1:]}" in call.request.body
    # and nothing is stored, nothing of the number is logged
    assert not Contact.objects.exists() and not ChatThread.objects.exists()
    assert not Message.objects.exists()
    assert TO not in caplog.text and TO[1:] not in caplog.text
    assert "channel test message accepted" in caplog.text


@responses.activate
def test_a_refused_test_message_shows_the_code_and_what_it_means(tenant, owner_client):
    channel = factories.CloudChannelFactory(tenant=tenant)
    number_id = channel.settings["phone_number_id"]
    responses.post(
        f"https://graph.facebook.test/v22.0/{number_id}/messages",
        json=load("cloud_api/error_131030.json"),
        status=400,
    )

    page = owner_client.post(message_url(channel), {"to_phone": TO}).content.decode()

    assert "Refused by WhatsApp Cloud API" in page
    assert "131030" in page
    assert "Recipient phone number not in allowed list" in page
    assert "allowed list: add it in Meta" in page


@responses.activate
def test_a_bad_number_is_a_form_error_and_sends_nothing(tenant, owner_client):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    for bad in ("", "4155550123", "+0123", "+1" + "2" * 20, "<script>"):
        response = owner_client.post(message_url(channel), {"to_phone": bad})
        assert response.status_code == 200
        assert response.context["form"].errors["to_phone"]
    assert len(responses.calls) == 0


@responses.activate
def test_test_messages_are_limited_per_channel(tenant, owner_client):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    responses.post(TWILIO_MESSAGES, json=load("twilio/messages_create_201.json"), status=201)
    for _ in range(TEST_SENDS_PER_WINDOW):
        owner_client.post(message_url(channel), {"to_phone": TO})
    response = owner_client.post(message_url(channel), {"to_phone": TO})
    assert "try again later" in response.content.decode()
    assert len(responses.calls) == TEST_SENDS_PER_WINDOW


@pytest.mark.parametrize("role", ["viewer", "agent"])
@responses.activate
def test_viewers_and_agents_cannot_send_a_test_message(tenant, member, role):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    client = Client()
    client.force_login(member(tenant, role))
    assert client.get(message_url(channel)).status_code == 403
    assert client.post(message_url(channel), {"to_phone": TO}).status_code == 403
    assert len(responses.calls) == 0


@responses.activate
def test_another_tenants_channel_is_a_404(tenant, other_tenant, member):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    client = Client()
    client.force_login(member(other_tenant, "owner"))
    assert client.get(message_url(channel)).status_code == 404
    assert client.post(message_url(channel), {"to_phone": TO}).status_code == 404
    assert len(responses.calls) == 0
