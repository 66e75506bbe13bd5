"""Tenants, API keys and channels over the API."""

import pytest
from django.urls import reverse

from channels_app.models import ChannelInstance
from tenants.api_keys import api_key_authenticate
from tenants.models import Tenant, TenantAPIKey
from tests import factories
from tests.api_helpers import error_of, key_client

TENANT_BODY = {
    "name": "Acme Fitness",
    "owner_name": "Ana Souza",
    "owner_email": "ana@example.com",
    "owner_phone": "+5511988887777",
    "config": {
        "business_description": "A gym",
        "target_audience": "Adults",
        "communication_style": "Friendly",
        "language": "pt-BR",
    },
    "opt_out_keywords": ["stop", "parar"],
    "opt_in_keywords": ["start"],
}


@pytest.mark.django_db
def test_staff_create_a_tenant_with_its_config(staff_client):
    response = staff_client.post(reverse("tenant-list"), TENANT_BODY, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "acme-fitness"
    assert body["config"]["language"] == "pt-BR"
    assert body["is_active"] is True
    assert {"id", "created_at"} <= set(body)
    tenant = Tenant.objects.get(pk=body["id"])
    assert tenant.config.business_description == "A gym"
    assert tenant.owner_email == "ana@example.com"


@pytest.mark.django_db
def test_invalid_tenant_bodies_are_400_and_store_nothing(staff_client, tenant):
    cases = [
        ({**TENANT_BODY, "name": ""}, "name"),
        ({**TENANT_BODY, "owner_email": "not-an-email"}, "owner_email"),
        ({**TENANT_BODY, "owner_phone": "123"}, "owner_phone"),
        ({**TENANT_BODY, "slug": tenant.slug}, "slug"),
        ({**TENANT_BODY, "opt_out_keywords": "stop"}, "opt_out_keywords"),
        ({**TENANT_BODY, "config": {"language": "x" * 50}}, "config.language"),
    ]
    for body, path in cases:
        response = staff_client.post(reverse("tenant-list"), body, format="json")
        assert response.status_code == 400, (path, response.content)
        assert path in [d["path"] for d in error_of(response)["details"]]
    assert Tenant.objects.count() == 1


@pytest.mark.django_db
def test_tenant_list_is_paginated_with_a_flat_query_budget(
    staff_client, django_assert_max_num_queries
):
    for rows in (3, 30):
        factories.TenantFactory.create_batch(rows - Tenant.objects.count())
        with django_assert_max_num_queries(4):
            response = staff_client.get(reverse("tenant-list"))
        assert response.json()["count"] == rows


@pytest.mark.django_db
def test_patch_tenant_updates_config_and_delete_is_soft(staff_client, tenant):
    url = reverse("tenant-detail", kwargs={"tenant": tenant.pk})
    response = staff_client.patch(
        url, {"name": "Renamed", "config": {"language": "es"}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"
    assert response.json()["config"]["language"] == "es"
    assert staff_client.delete(url).status_code == 204
    assert staff_client.get(url).status_code == 404
    assert Tenant.all_objects.get(pk=tenant.pk).deleted_at is not None


@pytest.mark.django_db
def test_a_key_may_update_its_tenant_but_not_its_staff_fields(tenant):
    client = key_client(tenant)
    url = reverse("tenant-detail", kwargs={"tenant": tenant.pk})
    assert client.patch(url, {"name": "Self-service"}, format="json").status_code == 200
    for body in ({"is_active": False}, {"slug": "new-slug"}):
        response = client.patch(url, body, format="json")
        assert response.status_code == 403
    tenant.refresh_from_db()
    assert tenant.is_active and tenant.name == "Self-service"


@pytest.mark.django_db
def test_api_key_lifecycle(staff_client, tenant, other_tenant):
    url = reverse("api-key-list", kwargs={"tenant": tenant.pk})
    created = staff_client.post(url, {"name": "crm"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "name", "prefix", "key", "created_at"}
    assert body["key"].startswith(body["prefix"] + ".")
    # the key is never shown again
    listed = staff_client.get(url).json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]
    assert "key" not in listed[0] and "hashed_key" not in listed[0]
    # another tenant's keys are not listed here
    staff_client.post(
        reverse("api-key-list", kwargs={"tenant": other_tenant.pk}), {"name": "x"}, format="json"
    )
    assert len(staff_client.get(url).json()["results"]) == 1
    # the key works, then is revoked
    assert api_key_authenticate(raw_key=body["key"]) is not None
    detail = reverse("api-key-detail", kwargs={"tenant": tenant.pk, "key": body["id"]})
    assert staff_client.delete(detail).status_code == 204
    assert TenantAPIKey.objects.get(pk=body["id"]).revoked_at is not None
    assert api_key_authenticate(raw_key=body["key"]) is None
    # a key of another tenant cannot be revoked through this tenant's URL
    other_key = TenantAPIKey.objects.get(tenant=other_tenant)
    wrong = reverse("api-key-detail", kwargs={"tenant": tenant.pk, "key": other_key.pk})
    assert staff_client.delete(wrong).status_code == 404
    assert TenantAPIKey.objects.get(pk=other_key.pk).revoked_at is None


@pytest.mark.django_db
def test_channel_secrets_are_write_only(tenant):
    client = key_client(tenant)
    url = reverse("channel-list", kwargs={"tenant": tenant.pk})
    body = {
        "provider": "cloud_api",
        "identifier": "whatsapp:+5511999990000",
        "phone_number": "+5511999990000",
        "settings": {"phone_number_id": "106540352242922"},
        "secrets": {"access_token": "EAAG-very-secret"},
    }
    response = client.post(url, body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert set(data) == {
        "id",
        "channel_type",
        "provider",
        "identifier",
        "phone_number",
        "settings",
        "is_active",
        "has_secrets",
        "created_at",
    }
    assert data["has_secrets"] is True
    assert "EAAG-very-secret" not in client.get(url).content.decode()
    channel = ChannelInstance.objects.get(pk=data["id"])
    assert channel.secrets == {"access_token": "EAAG-very-secret"}
    assert channel.tenant_id == tenant.pk


@pytest.mark.django_db
def test_invalid_channels_are_400_without_echoing_secrets(tenant):
    client = key_client(tenant)
    url = reverse("channel-list", kwargs={"tenant": tenant.pk})
    response = client.post(
        url,
        {
            "provider": "twilio",
            "phone_number": "12345",
            "secrets": {"auth_token": "tok-secret-value", "bogus": "other-secret"},
        },
        format="json",
    )
    assert response.status_code == 400
    paths = {d["path"] for d in error_of(response)["details"]}
    assert "phone_number" in paths
    assert "tok-secret-value" not in response.content.decode()
    assert "other-secret" not in response.content.decode()
    assert not ChannelInstance.objects.exists()
    bad_provider = client.post(
        url, {"provider": "sms", "phone_number": "+14155238886"}, format="json"
    )
    assert bad_provider.status_code == 400


@pytest.mark.django_db
def test_channel_list_patch_delete_and_isolation(
    tenant, other_tenant, django_assert_max_num_queries
):
    client = key_client(tenant)
    url = reverse("channel-list", kwargs={"tenant": tenant.pk})
    factories.TwilioChannelFactory(tenant=other_tenant)
    for rows in (3, 30):
        factories.TwilioChannelFactory.create_batch(
            rows - ChannelInstance.objects.filter(tenant=tenant).count(), tenant=tenant
        )
        with django_assert_max_num_queries(4):
            response = client.get(url)
        assert response.json()["count"] == rows
        assert {row["id"] for row in response.json()["results"]} <= {
            str(pk)
            for pk in ChannelInstance.objects.filter(tenant=tenant).values_list("pk", flat=True)
        }
    channel = ChannelInstance.objects.filter(tenant=tenant).first()
    detail = reverse("channel-detail", kwargs={"tenant": tenant.pk, "channel": channel.pk})
    patched = client.patch(
        detail, {"is_active": False, "secrets": {"auth_token": ""}}, format="json"
    )
    assert patched.status_code == 200
    channel.refresh_from_db()
    assert channel.is_active is False and "auth_token" not in channel.secrets
    assert client.delete(detail).status_code == 204
    assert ChannelInstance.all_objects.get(pk=channel.pk).deleted_at is not None
    assert client.get(detail).status_code == 404


@pytest.mark.django_db
def test_only_staff_choose_where_a_channel_sends(tenant, staff_client):
    # given: a tenant's Twilio channel
    client = key_client(tenant)
    channel = factories.TwilioChannelFactory(tenant=tenant)
    url = reverse("channel-detail", kwargs={"tenant": tenant.pk, "channel": channel.pk})
    override = {"settings": {"api_base_url": "https://evil.test"}}

    # when: the tenant's key tries to point it elsewhere, on update and on create
    patched = client.patch(url, override, format="json")
    created = client.post(
        reverse("channel-list", kwargs={"tenant": tenant.pk}),
        {"provider": "twilio", "phone_number": "+14155230000", **override},
        format="json",
    )

    # then: refused with a clear error, nothing changed; staff may set it
    assert patched.status_code == created.status_code == 400
    assert "Only platform staff" in error_of(patched)["details"][0]["message"]
    channel.refresh_from_db()
    assert "api_base_url" not in channel.settings
    assert ChannelInstance.objects.filter(tenant=tenant).count() == 1
    staff = staff_client.patch(
        url, {"settings": {"api_base_url": "https://twilio-proxy.test"}}, format="json"
    )
    assert staff.status_code == 200
    assert client.patch(url, {"settings": {}}, format="json").status_code == 200  # removing


@pytest.mark.django_db
@pytest.mark.parametrize(
    "settings",
    [
        r'{"messaging_service_sid": "MG\u0000"}',
        r'{"messaging_service_sid": "MG\ud800"}',
        r'{"bad\u0000key": "x"}',
    ],
)
def test_channel_settings_the_database_cannot_store_are_400(tenant, settings):
    # JSON escapes, as a client would send them: valid JSON, not storable text
    body = '{"provider": "twilio", "phone_number": "+14155230000", "settings": ' + settings + "}"
    response = key_client(tenant).post(
        reverse("channel-list", kwargs={"tenant": tenant.pk}),
        body,
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert error_of(response)["details"][0]["path"] == "settings"
    assert not ChannelInstance.objects.exists()


@pytest.mark.django_db
def test_a_cloud_phone_number_id_longer_than_the_column_is_400(tenant):
    response = key_client(tenant).post(
        reverse("channel-list", kwargs={"tenant": tenant.pk}),
        {
            "provider": "cloud_api",
            "phone_number": "+14155230000",
            "settings": {"phone_number_id": "1" * 65},
        },
        format="json",
    )
    assert response.status_code == 400
    assert "64 characters" in error_of(response)["details"][0]["message"]
