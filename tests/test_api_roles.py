"""Roles through the API: the reported hole (a bare staff user read and changed every
tenant), members managed by owners, and what each role is told when refused."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.test import APIClient

from tenants.models import Tenant, TenantAPIKey, TenantMembership
from tests import factories
from tests.api_helpers import error_of

AUTH = "/api/controller/auth"


@pytest.mark.django_db
def test_a_staff_user_without_permissions_reaches_no_tenant(tenant, django_user_model):
    # given: the reproducer of the report: is_staff, no permission, no membership
    temp = django_user_model.objects.create_user(
        username="temp", password="pw-temp-12345", is_staff=True
    )
    channel = factories.TwilioChannelFactory(tenant=tenant)
    contact = factories.ContactFactory(tenant=tenant)
    client = APIClient()

    # when: it logs in and tries what the report did
    login = client.post(AUTH, {"username": "temp", "password": "pw-temp-12345"}, format="json")
    client.force_login(temp)  # even with a session (from the admin, say)
    export = client.get(
        reverse("contact-export", kwargs={"tenant": tenant.pk, "contact": contact.pk})
    )
    minted = client.post(reverse("api-key-list", kwargs={"tenant": tenant.pk}), {"name": "x"})
    pointed = client.patch(
        reverse("channel-detail", kwargs={"tenant": tenant.pk, "channel": channel.pk}),
        {"settings": {"api_base_url": "https://evil.test"}},
        format="json",
    )
    switched = client.patch(
        reverse("tenant-detail", kwargs={"tenant": tenant.pk}), {"is_active": False}, format="json"
    )
    erased = client.post(
        reverse("contact-erase", kwargs={"tenant": tenant.pk, "contact": contact.pk}), {}
    )

    # then: the login is refused like a wrong password, and every call is refused
    assert login.status_code == 401
    assert {r.status_code for r in (export, minted, pointed, switched, erased)} == {403}
    assert not TenantAPIKey.objects.filter(tenant=tenant).exists()
    channel.refresh_from_db()
    tenant.refresh_from_db()
    contact.refresh_from_db()
    assert "api_base_url" not in channel.settings and tenant.is_active
    assert contact.erased_at is None


@pytest.mark.django_db
def test_members_log_in_to_the_api_and_see_their_roles(tenant, other_tenant, member):
    user = member(tenant, "agent", username="ana")
    factories.MembershipFactory(tenant=other_tenant, user=user, role="viewer")
    client = APIClient()
    login = client.post(AUTH, {"username": "ana", "password": "pw-member-123456"}, format="json")
    assert login.status_code == 200
    me = client.get("/api/controller/me").json()
    assert me["is_platform_staff"] is False
    assert {(m["tenant"], m["role"]) for m in me["memberships"]} == {
        (str(tenant.pk), "agent"),
        (str(other_tenant.pk), "viewer"),
    }


@pytest.mark.django_db
def test_owner_cannot_switch_the_tenant_off_or_point_a_channel_elsewhere(tenant, member):
    client = APIClient()
    client.force_login(member(tenant, "owner"))
    url = reverse("tenant-detail", kwargs={"tenant": tenant.pk})
    renamed = client.patch(url, {"name": "New name"}, format="json")
    switched = client.patch(url, {"is_active": False}, format="json")
    channel = factories.TwilioChannelFactory(tenant=tenant)
    pointed = client.patch(
        reverse("channel-detail", kwargs={"tenant": tenant.pk, "channel": channel.pk}),
        {"settings": {"api_base_url": "https://evil.test"}},
        format="json",
    )
    assert renamed.status_code == 200
    assert switched.status_code == 403
    assert "platform staff" in error_of(switched)["message"]
    assert pointed.status_code == 400
    tenant.refresh_from_db()
    assert tenant.is_active and tenant.name == "New name"


@pytest.mark.django_db
def test_a_refused_role_is_told_what_it_would_need(tenant, member):
    thread = factories.ThreadFactory(channel=factories.TwilioChannelFactory(tenant=tenant))
    client = APIClient()
    client.force_login(member(tenant, "viewer"))
    response = client.post(
        reverse("thread-messages", kwargs={"tenant": tenant.pk, "thread": thread.pk}),
        {"text": "hi"},
        format="json",
    )
    assert response.status_code == 403
    assert error_of(response)["message"].startswith("Your role may read conversations")


# --- Members -----------------------------------------------------------------------------


def _owner_client(tenant, member):
    client = APIClient()
    owner = member(tenant, "owner", username="owner")
    client.force_login(owner)
    return client, owner


@pytest.mark.django_db
def test_an_owner_invites_a_new_person_who_sets_a_password_and_logs_in(tenant, member, client):
    # given: an owner
    api, owner = _owner_client(tenant, member)
    # when: they invite a new email as an agent
    response = api.post(
        reverse("member-list", kwargs={"tenant": tenant.pk}),
        {"email": "Bia@Example.com", "role": "agent", "name": "Bia Lima"},
        format="json",
    )
    # then: the account exists without a password, and the one-time link sets one
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["role"] == "agent" and body["user"]["email"] == "Bia@Example.com"
    assert body["invite_url"].startswith("https://chatai.example.com/accounts/reset/")
    user = get_user_model().objects.get(email="Bia@Example.com")
    assert not user.has_usable_password() and user.get_full_name() == "Bia Lima"
    membership = TenantMembership.objects.get(user=user)
    assert membership.invited_by == owner
    path = body["invite_url"].removeprefix("https://chatai.example.com")
    form = client.get(path, follow=True)
    assert form.status_code == 200
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a-Long-pass-9876", "new_password2": "a-Long-pass-9876"},
    )
    assert done.status_code == 302
    admin_login = client.post(
        "/admin/login/", {"username": "bia@example.com", "password": "a-Long-pass-9876"}
    )
    assert admin_login.status_code == 302 and admin_login.url == "/admin/"
    # and the link works only once
    assert "Password reset unsuccessful" in client.get(path, follow=True).content.decode()


@pytest.mark.django_db
def test_inviting_an_existing_account_adds_it_without_a_link(tenant, other_tenant, member):
    api, _ = _owner_client(tenant, member)
    existing = member(other_tenant, "owner", email="carla@example.com")
    response = api.post(
        reverse("member-list", kwargs={"tenant": tenant.pk}),
        {"email": "carla@example.com", "role": "viewer"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["invite_url"] is None
    assert existing.tenant_memberships.count() == 2
    again = api.post(
        reverse("member-list", kwargs={"tenant": tenant.pk}),
        {"email": "carla@example.com", "role": "agent"},
        format="json",
    )
    assert again.status_code == 400
    assert error_of(again)["details"][0]["path"] == "email"


@pytest.mark.django_db
def test_the_last_owner_stays(tenant, member):
    api, owner = _owner_client(tenant, member)
    own = TenantMembership.objects.get(user=owner)
    url = reverse("member-detail", kwargs={"tenant": tenant.pk, "member": own.pk})
    demoted = api.patch(url, {"role": "agent"}, format="json")
    removed = api.delete(url)
    assert demoted.status_code == removed.status_code == 400
    assert "last owner" in error_of(demoted)["details"][0]["message"]
    # with a second owner, the first may step down, and then has no member rights left
    second = member(tenant, "owner")
    assert api.patch(url, {"role": "agent"}, format="json").status_code == 200
    assert api.get(reverse("member-list", kwargs={"tenant": tenant.pk})).status_code == 403
    assert TenantMembership.objects.filter(tenant=tenant, role="owner").get().user == second


@pytest.mark.django_db
def test_an_owner_removes_a_member_who_then_sees_nothing(tenant, member):
    api, _ = _owner_client(tenant, member)
    agent = member(tenant, "agent")
    membership = TenantMembership.objects.get(user=agent)
    url = reverse("member-detail", kwargs={"tenant": tenant.pk, "member": membership.pk})
    assert api.delete(url).status_code == 204
    former = APIClient()
    former.force_login(agent)
    assert former.get(reverse("tenant-detail", kwargs={"tenant": tenant.pk})).status_code == 403
    assert TenantMembership.all_objects.get(pk=membership.pk).deleted_at is not None


@pytest.mark.django_db
def test_an_owner_cannot_touch_another_tenants_members(tenant, other_tenant, member):
    api, _ = _owner_client(tenant, member)
    theirs = TenantMembership.objects.get(user=member(other_tenant, "agent"))
    url = reverse("member-detail", kwargs={"tenant": tenant.pk, "member": theirs.pk})
    assert api.get(url).status_code == 404
    assert api.delete(url).status_code == 404
    elsewhere = reverse("member-detail", kwargs={"tenant": other_tenant.pk, "member": theirs.pk})
    assert api.delete(elsewhere).status_code == 404
    assert TenantMembership.objects.filter(pk=theirs.pk).exists()


@pytest.mark.django_db
def test_only_platform_staff_create_tenants(member, tenant, staff_client):
    api, _ = _owner_client(tenant, member)
    body = {"name": "Other business"}
    refused = api.post(reverse("tenant-list"), body, format="json")
    assert refused.status_code == 403
    assert not Tenant.objects.filter(name="Other business").exists()
    assert staff_client.post(reverse("tenant-list"), body, format="json").status_code == 201
