"""Owners manage their members in the admin: invite by email (a new account gets a one-time
link), change roles, remove; the last owner stays; another tenant is out of reach."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from tenants.models import TenantMembership

ADD = reverse("admin:tenants_tenantmembership_add")


@pytest.fixture
def owner_client(tenant, member):
    client = Client()
    owner = member(tenant, "owner", username="owner")
    client.force_login(owner)
    client.owner = owner
    return client


@pytest.mark.django_db
def test_an_owner_invites_an_agent_and_sees_the_link_once(owner_client, tenant, other_tenant):
    # given: the add page offers only the owner's tenant
    page = owner_client.get(ADD)
    assert page.status_code == 200
    assert list(page.context["adminform"].form.fields["tenant"].queryset) == [tenant]
    # when: they invite a new email
    response = owner_client.post(
        ADD, {"tenant": tenant.pk, "email": "dani@example.com", "name": "Dani", "role": "agent"}
    )
    # then: the member exists, and the one-time link is shown in a message
    assert response.status_code == 302
    user = get_user_model().objects.get(email="dani@example.com")
    assert TenantMembership.objects.get(user=user).role == "agent"
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("/accounts/reset/" in text for text in shown)


@pytest.mark.django_db
def test_the_invite_form_refuses_another_tenant_and_a_second_invitation(
    owner_client, tenant, other_tenant, member
):
    elsewhere = owner_client.post(
        ADD, {"tenant": other_tenant.pk, "email": "x@example.com", "role": "agent"}
    )
    assert elsewhere.status_code == 200
    assert "tenant" in elsewhere.context["adminform"].form.errors
    member(tenant, "viewer", email="vera@example.com")
    twice = owner_client.post(
        ADD, {"tenant": tenant.pk, "email": "vera@example.com", "role": "agent"}
    )
    assert twice.status_code == 200
    assert "already a member" in str(twice.context["adminform"].form.errors)
    assert not get_user_model().objects.filter(email="x@example.com").exists()


@pytest.mark.django_db
def test_the_last_owner_cannot_be_demoted_in_the_admin(owner_client):
    own = TenantMembership.objects.get(user=owner_client.owner)
    url = reverse("admin:tenants_tenantmembership_change", args=[own.pk])
    response = owner_client.post(url, {"role": "viewer"})
    assert response.status_code == 200
    assert "last owner" in str(response.context["adminform"].form.errors)
    own.refresh_from_db()
    assert own.role == "owner"


@pytest.mark.django_db
def test_an_owner_changes_and_removes_a_member(owner_client, tenant, member):
    agent = TenantMembership.objects.get(user=member(tenant, "agent"))
    change = reverse("admin:tenants_tenantmembership_change", args=[agent.pk])
    assert owner_client.post(change, {"role": "viewer"}).status_code == 302
    agent.refresh_from_db()
    assert agent.role == "viewer"
    delete = reverse("admin:tenants_tenantmembership_delete", args=[agent.pk])
    assert owner_client.post(delete, {"post": "yes"}).status_code == 302
    assert not TenantMembership.objects.filter(pk=agent.pk).exists()
