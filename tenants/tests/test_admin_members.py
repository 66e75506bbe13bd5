"""Owners manage their members in the admin: invitations (the one-time link is shown once),
role changes, removal; the last owner stays; another tenant is out of reach."""

import re

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from tenants.models import TenantInvitation, TenantMembership

ADD = reverse("admin:tenants_tenantinvitation_add")


@pytest.fixture
def owner_client(tenant, member):
    client = Client()
    owner = member(tenant, "owner", username="owner")
    client.force_login(owner)
    client.owner = owner
    return client


@pytest.mark.django_db
def test_an_owner_invites_someone_and_sees_the_link_once(owner_client, tenant, other_tenant):
    # given: the add page offers only the owner's tenant
    page = owner_client.get(ADD)
    assert page.status_code == 200
    assert list(page.context["adminform"].form.fields["tenant"].queryset) == [tenant]
    # when: they invite an email
    response = owner_client.post(
        ADD, {"tenant": tenant.pk, "email": "dani@example.com", "role": "agent"}
    )
    # then: a pending invitation, and its link in a message (and nowhere else)
    assert response.status_code == 302
    invitation = TenantInvitation.objects.get()
    assert (invitation.tenant, invitation.role, invitation.status) == (tenant, "agent", "pending")
    shown = " ".join(str(m) for m in get_messages(response.wsgi_request))
    link = re.search(r"/accounts/invite/[\w-]+/", shown).group(0)
    assert owner_client.get(link).status_code == 200
    detail = owner_client.get(
        reverse("admin:tenants_tenantinvitation_change", args=[invitation.pk])
    )
    assert link not in detail.content.decode()


@pytest.mark.django_db
def test_the_invite_form_refuses_another_tenant(owner_client, other_tenant):
    elsewhere = owner_client.post(
        ADD, {"tenant": other_tenant.pk, "email": "x@example.com", "role": "agent"}
    )
    assert elsewhere.status_code == 200
    assert "tenant" in elsewhere.context["adminform"].form.errors
    assert not TenantInvitation.objects.exists()


@pytest.mark.django_db
def test_the_last_owner_can_be_neither_demoted_nor_removed_in_the_admin(owner_client):
    own = TenantMembership.objects.get(user=owner_client.owner)
    change = reverse("admin:tenants_tenantmembership_change", args=[own.pk])
    demoted = owner_client.post(change, {"role": "viewer"})
    assert demoted.status_code == 200
    assert "last owner" in str(demoted.context["adminform"].form.errors)
    delete = reverse("admin:tenants_tenantmembership_delete", args=[own.pk])
    page = owner_client.get(delete)
    assert "last owner" in page.content.decode()
    owner_client.post(delete, {"post": "yes"})
    own.refresh_from_db()
    assert own.role == "owner" and own.deleted_at is None
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


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


@pytest.mark.django_db
def test_accounts_and_groups_stay_with_platform_staff(tenant, member):
    # given: a member who kept a Django permission on accounts from before memberships
    viewer = member(tenant, "viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="change_user"))
    client = Client()
    client.force_login(viewer)
    # then: the accounts pages are refused all the same
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert client.get(reverse("admin:auth_user_change", args=[viewer.pk])).status_code == 403
