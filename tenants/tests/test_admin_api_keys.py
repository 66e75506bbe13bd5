"""API keys made in the admin: through `api_key_create`, for a tenant the user owns, shown once;
agents and viewers may not; deleting revokes."""

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from tenants.api_keys import api_key_authenticate, api_key_create
from tenants.models import TenantAPIKey
from tests.factories import MembershipFactory

ADD = "admin:tenants_tenantapikey_add"
KEY = re.compile(r"chk_[0-9a-f]{8}\.[A-Za-z0-9_-]{43}")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_an_owner_creates_a_key_and_sees_it_once(tenant, member, caplog):
    # given
    client = _client(member(tenant, "owner"))

    # when
    response = client.post(reverse(ADD), {"tenant": tenant.pk, "name": "CRM sync"}, follow=True)

    # then: the key is in the message, works, and is stored only as a hash
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    raw_key = next(KEY.search(text).group(0) for text in shown if KEY.search(text))
    api_key = TenantAPIKey.objects.get(tenant=tenant, name="CRM sync")
    assert api_key_authenticate(raw_key=raw_key).pk == api_key.pk
    assert raw_key.split(".")[1] not in api_key.hashed_key
    # and never again: not on the next page, not on the key's own page, not in a log line
    again = client.get(reverse("admin:tenants_tenantapikey_change", args=[api_key.pk]))
    assert raw_key not in again.content.decode()
    assert list(get_messages(again.wsgi_request)) == []
    assert raw_key not in caplog.text


@pytest.mark.django_db
def test_the_add_form_offers_only_tenants_where_the_user_manages_keys(tenant, other_tenant, member):
    # given: an owner here, a viewer at the other tenant
    user = member(tenant, "owner")
    MembershipFactory(tenant=other_tenant, user=user, role="viewer")
    client = _client(user)

    # then: only their own tenant is offered
    page = client.get(reverse(ADD))
    assert list(page.context["adminform"].form.fields["tenant"].queryset) == [tenant]

    # and a key for the other tenant is refused on the form, not created
    response = client.post(reverse(ADD), {"tenant": other_tenant.pk, "name": "sneaky"})
    assert response.status_code == 200
    assert "tenant" in response.context["adminform"].form.errors
    assert not TenantAPIKey.objects.filter(tenant=other_tenant).exists()


@pytest.mark.django_db
def test_a_name_is_required(tenant, member):
    client = _client(member(tenant, "owner"))
    response = client.post(reverse(ADD), {"tenant": tenant.pk, "name": ""})
    assert response.status_code == 200
    assert "name" in response.context["adminform"].form.errors
    assert not TenantAPIKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["agent", "viewer"])
def test_agents_and_viewers_may_not_create_keys(role, tenant, member):
    client = _client(member(tenant, role))
    assert client.get(reverse(ADD)).status_code == 403
    response = client.post(reverse(ADD), {"tenant": tenant.pk, "name": "x"})
    assert response.status_code == 403
    assert not TenantAPIKey.objects.exists()


@pytest.mark.django_db
def test_platform_staff_create_keys_for_any_tenant(admin_client, tenant, other_tenant):
    response = admin_client.post(reverse(ADD), {"tenant": other_tenant.pk, "name": "ops"})
    assert response.status_code == 302
    assert TenantAPIKey.objects.get().tenant == other_tenant


@pytest.mark.django_db
def test_deleting_a_key_revokes_it(tenant, member):
    api_key, raw_key = api_key_create(tenant=tenant, name="old")
    client = _client(member(tenant, "owner"))
    url = reverse("admin:tenants_tenantapikey_delete", args=[api_key.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert api_key_authenticate(raw_key=raw_key) is None
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
