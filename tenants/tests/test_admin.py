"""Staff onboard a tenant in the admin: tenant, project config and channel on one page."""

import pytest
from django.urls import reverse

from channels_app.models import ChannelInstance
from conversations.admin import mask_phone
from tenants.models import Tenant
from tests.factories import ContactFactory, TwilioChannelFactory


def inline_management(prefix: str, total: int, initial: int = 0) -> dict[str, str]:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def onboarding_form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Acme Fitness",
        "slug": "acme-fitness",
        "is_active": "on",
        "owner_name": "Ana Souza",
        "owner_email": "ana@example.com",
        "owner_phone": "+5511988887777",
        "opt_out_keywords": "stop, parar",
        "opt_in_keywords": "start",
        **inline_management("config", 1),
        "config-0-business_description": "A gym",
        "config-0-target_audience": "Adults",
        "config-0-communication_style": "Friendly",
        "config-0-language": "pt-BR",
        **inline_management("channels", 1),
        "channels-0-provider": "twilio",
        "channels-0-identifier": "",
        "channels-0-phone_number": "+14155238886",
        "channels-0-account_sid": "AC123",
        "channels-0-auth_token": "super-secret-token",
        "channels-0-messaging_service_sid": "",
        "channels-0-phone_number_id": "",
        "channels-0-business_account_id": "",
        "channels-0-access_token": "",
        "channels-0-app_secret": "",
        "channels-0-is_active": "on",
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_staff_onboard_a_tenant_with_config_and_channel(client, staff_user):
    # given
    client.force_login(staff_user)

    # when
    response = client.post(reverse("admin:tenants_tenant_add"), onboarding_form())

    # then
    assert response.status_code == 302, response.content.decode()[:3000]
    tenant = Tenant.objects.get(slug="acme-fitness")
    assert tenant.owner_email == "ana@example.com"
    assert tenant.opt_out_keywords == ["stop", "parar"]
    assert tenant.config.language == "pt-BR"
    assert tenant.config.business_description == "A gym"
    channel = ChannelInstance.objects.get(tenant=tenant)
    assert channel.identifier == "whatsapp:+14155238886"
    assert channel.secrets == {"account_sid": "AC123", "auth_token": "super-secret-token"}


@pytest.mark.django_db
def test_invalid_channel_shows_errors_and_stores_nothing(client, staff_user):
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:tenants_tenant_add"),
        onboarding_form(**{"channels-0-provider": "cloud_api"}),
    )
    assert response.status_code == 200
    assert "Required for the Cloud API." in response.content.decode()
    assert not Tenant.all_objects.exists()


@pytest.mark.django_db
def test_channel_secrets_are_never_shown_back(client, staff_user):
    channel = TwilioChannelFactory(secrets={"account_sid": "AC999", "auth_token": "tok-hidden"})
    client.force_login(staff_user)
    for url in (
        reverse("admin:channels_app_channelinstance_change", args=[channel.pk]),
        reverse("admin:tenants_tenant_change", args=[channel.tenant.pk]),
        reverse("admin:channels_app_channelinstance_changelist"),
    ):
        body = client.get(url).content.decode()
        assert "tok-hidden" not in body and "AC999" not in body


@pytest.mark.django_db
def test_editing_a_channel_keeps_secrets_left_empty(client, staff_user):
    channel = TwilioChannelFactory(secrets={"account_sid": "AC999", "auth_token": "tok-hidden"})
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:channels_app_channelinstance_change", args=[channel.pk]),
        {
            "provider": "twilio",
            "identifier": channel.identifier,
            "phone_number": channel.phone_number,
            "account_sid": "",
            "auth_token": "tok-new",
            "access_token": "",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = ChannelInstance.objects.get(pk=channel.pk)
    assert channel.secrets == {"account_sid": "AC999", "auth_token": "tok-new"}


@pytest.mark.django_db
def test_contacts_show_only_the_last_four_digits(client, staff_user):
    contact = ContactFactory(phone="+5511912345678")
    client.force_login(staff_user)
    changelist = client.get(reverse("admin:conversations_contact_changelist")).content.decode()
    detail = client.get(
        reverse("admin:conversations_contact_change", args=[contact.pk])
    ).content.decode()
    for body in (changelist, detail):
        assert "5678" in body
        assert "+5511912345678" not in body and "1912345678" not in body
    assert mask_phone("+5511912345678").endswith("5678")
