"""Roles through the API: the reported hole (a bare staff user read and changed every
tenant), members managed by owners, and what each role is told when refused."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.models import Tenant, TenantAPIKey, TenantInvitation, TenantMembership
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


def _invite(api, tenant, email="bia@example.com", role="agent"):
    return api.post(
        reverse("invitation-list", kwargs={"tenant": tenant.pk}),
        {"email": email, "role": role},
        format="json",
    )


def _link_path(body):
    assert body["invite_url"].startswith("https://chatai.example.com/accounts/invite/")
    return body["invite_url"].removeprefix("https://chatai.example.com")


@pytest.mark.django_db
def test_an_invited_person_creates_an_account_and_joins(tenant, member, client):
    # given: an owner invites someone by email
    api, owner = _owner_client(tenant, member)
    response = _invite(api, tenant)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["role"] == "agent"
    # nothing exists for that email yet: no account is made by the inviter
    assert not get_user_model().objects.filter(email="bia@example.com").exists()

    # when: the link is opened and an account created there
    path = _link_path(body)
    page = client.get(path)
    assert page.status_code == 200 and tenant.name in page.content.decode()
    joined = client.post(
        path,
        {
            "action": "signup",
            "username": "bia",
            "password1": "a-Long-pass-9876",
            "password2": "a-Long-pass-9876",
        },
    )

    # then: they are an agent of the tenant, logged in, and the link is used up
    assert joined.status_code == 302 and joined.url == "/admin/"
    user = get_user_model().objects.get(username="bia")
    membership = TenantMembership.objects.get(user=user)
    assert (membership.tenant, membership.role, membership.invited_by) == (tenant, "agent", owner)
    assert client.get("/admin/").status_code == 200
    assert client.get(path).status_code == 404
    listed = api.get(reverse("invitation-list", kwargs={"tenant": tenant.pk})).json()
    assert [row["status"] for row in listed["results"]] == ["accepted"]


@pytest.mark.django_db
def test_an_existing_account_joins_by_logging_in_on_the_link(tenant, other_tenant, member, client):
    api, _ = _owner_client(tenant, member)
    existing = member(other_tenant, "owner", username="carla")
    path = _link_path(_invite(api, tenant, email="carla@example.com", role="viewer").json())
    wrong = client.post(path, {"action": "login", "username": "carla", "password": "nope"})
    assert wrong.status_code == 200
    assert not TenantMembership.objects.filter(tenant=tenant, user=existing).exists()
    joined = client.post(
        path, {"action": "login", "username": "carla", "password": "pw-member-123456"}
    )
    assert joined.status_code == 302
    assert TenantMembership.objects.get(tenant=tenant, user=existing).role == "viewer"


@pytest.mark.django_db
def test_inviting_reveals_nothing_about_accounts_and_attaches_no_one(tenant, other_tenant, member):
    # given: someone of another tenant has an account with this email
    api, _ = _owner_client(tenant, member)
    existing = member(other_tenant, "owner", email="cfo@example.com")
    # when: the owner invites that email and an unknown one
    known = _invite(api, tenant, email="cfo@example.com").json()
    unknown = _invite(api, tenant, email="nobody@example.com").json()
    # then: the answers have the same shape, and nobody was added or created
    assert set(known) == set(unknown)
    assert "username" not in str(known) and "name" not in known
    assert existing.tenant_memberships.count() == 1
    assert not get_user_model().objects.filter(email="nobody@example.com").exists()


@pytest.mark.django_db
def test_a_withdrawn_or_expired_invitation_is_not_valid(tenant, member, client):
    api, _ = _owner_client(tenant, member)
    first = _invite(api, tenant).json()
    withdrawn = api.delete(
        reverse("invitation-detail", kwargs={"tenant": tenant.pk, "invitation": first["id"]})
    )
    assert withdrawn.status_code == 204
    assert client.get(_link_path(first)).status_code == 404
    second = _invite(api, tenant).json()
    TenantInvitation.objects.filter(pk=second["id"]).update(expires_at=timezone.now())
    page = client.get(_link_path(second))
    assert page.status_code == 404 and "not valid" in page.content.decode()
    for bad in ("x", "a" * 300, "%00"):
        assert client.get(f"/accounts/invite/{bad}/").status_code == 404


@pytest.mark.django_db
def test_a_logged_in_member_accepts_with_one_click(tenant, other_tenant, member, client):
    api, _ = _owner_client(tenant, member)
    user = member(other_tenant, "agent")
    client.force_login(user)
    path = _link_path(_invite(api, tenant, role="owner").json())
    page = client.get(path)
    assert f"Accept as {user.username}" in page.content.decode()
    assert client.post(path, {"action": "accept"}).status_code == 302
    assert TenantMembership.objects.get(tenant=tenant, user=user).role == "owner"
    # a second accept of the same link changes nothing
    assert client.post(path, {"action": "accept"}).status_code == 404


@pytest.mark.django_db
def test_a_long_email_is_invited_and_the_username_is_chosen(tenant, member, client):
    api, _ = _owner_client(tenant, member)
    email = "a" * 200 + "@example.com"
    response = _invite(api, tenant, email=email)
    assert response.status_code == 201
    path = _link_path(response.json())
    too_long = client.post(
        path,
        {
            "action": "signup",
            "username": email,
            "password1": "Pw-long-98765",
            "password2": "Pw-long-98765",
        },
    )
    assert too_long.status_code == 200  # the form says the username is too long
    assert not get_user_model().objects.filter(email=email).exists()


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


@pytest.mark.django_db
def test_a_removed_member_can_still_log_out(tenant, member):
    user = member(tenant, "agent", username="gone")
    client = APIClient(enforce_csrf_checks=True)
    token = client.post(
        AUTH, {"username": "gone", "password": "pw-member-123456"}, format="json"
    ).json()["csrf_token"]
    TenantMembership.objects.filter(user=user).delete()
    assert client.get("/api/controller/me").status_code == 403
    assert client.post("/api/controller/logout", HTTP_X_CSRFTOKEN=token).status_code == 204
    assert client.get("/api/controller/me").status_code == 401


@pytest.mark.django_db
def test_the_last_owner_rule_reads_the_stored_role(tenant, member):
    # given: a stale copy of a membership loaded as an agent, promoted to owner since
    from tenants.members import member_remove

    first = TenantMembership.objects.get(user=member(tenant, "owner"))
    second = TenantMembership.objects.get(user=member(tenant, "agent"))
    stale = TenantMembership.objects.get(pk=second.pk)
    TenantMembership.objects.filter(pk=second.pk).update(role="owner")
    TenantMembership.objects.filter(pk=first.pk).update(role="agent")
    # when / then: removing through the stale copy is refused: it is the last owner now
    with pytest.raises(ValidationError):
        member_remove(membership=stale)
    assert TenantMembership.objects.filter(tenant=tenant, role="owner").count() == 1
