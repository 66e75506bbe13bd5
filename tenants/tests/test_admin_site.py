"""The admin's sections (the sidebar, beside the dashboard on the index): ordered for the job,
with the number of conversations waiting for a human in the user's own tenants, counted in one
query."""

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from tenants import access
from tenants.admin_base import inbox_url, waiting_count
from tests import factories

SECTIONS_FOR_MEMBERS = ["Inbox", "Conversations", "Flows", "Channels", "Tenants"]
# Webhooks are integration settings: owners (and platform staff) see them, agents and viewers not.
SECTIONS_FOR_OWNERS = ["Inbox", "Conversations", "Flows", "Channels", "Integrations", "Tenants"]


def _sections(response) -> list[str]:
    return [app["name"] for app in response.context["app_list"]]


def _models(response, section: str) -> list[str]:
    app = next(app for app in response.context["app_list"] if app["name"] == section)
    return [model["object_name"] for model in app["models"]]


def _waiting(tenant, n: int = 1):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    return [factories.ThreadFactory(channel=channel, needs_human=True) for _ in range(n)]


@pytest.mark.django_db
def test_superusers_see_the_inbox_first_and_security_last(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert _sections(response) == [*SECTIONS_FOR_OWNERS, "Security"]
    assert _models(response, "Conversations") == ["ChatThread", "Contact", "Message"]
    assert _models(response, "Flows") == ["Flow", "FlowSession"]
    assert _models(response, "Tenants") == [
        "Tenant",
        "TenantMembership",
        "TenantInvitation",
        "TenantAPIKey",
    ]
    security = _models(response, "Security")
    assert security[:2] == ["User", "Group"]
    assert {"AccessAttempt", "AccessLog", "AccessFailureLog"} <= set(security)
    # the sidebar of every other page uses the same list
    page = admin_client.get(reverse("admin:tenants_tenant_changelist"))
    assert [app["name"] for app in page.context["available_apps"]] == _sections(response)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "agent", "viewer"])
def test_members_see_their_own_waiting_conversations_and_no_security(
    role, tenant, other_tenant, member
):
    # given: two waiting threads here, three at another tenant, and some that do not count
    _waiting(tenant, 2)
    _waiting(other_tenant, 3)
    channel = factories.TwilioChannelFactory(tenant=tenant)
    factories.ThreadFactory(channel=channel)  # the bot is handling it
    factories.ThreadFactory(channel=channel, needs_human=True, status="closed")
    client = Client()
    client.force_login(member(tenant, role))

    # when
    response = client.get(reverse("admin:index"))

    # then
    assert response.status_code == 200
    expected = SECTIONS_FOR_OWNERS if role == "owner" else SECTIONS_FOR_MEMBERS
    assert _sections(response) == expected
    inbox = response.context["app_list"][0]["models"][0]
    assert inbox["badge"] == 2
    assert inbox["admin_url"] == inbox_url()
    html = response.content.decode()
    assert 'class="count-badge count-badge-waiting"' in html
    assert "Security" not in _sections(response)
    assert "/admin/axes/" not in html and "/admin/auth/user/" not in html


@pytest.mark.django_db
def test_nothing_waiting_shows_zero(tenant, member):
    client = Client()
    client.force_login(member(tenant, "viewer"))
    response = client.get(reverse("admin:index"))
    assert response.context["app_list"][0]["models"][0]["badge"] == 0
    assert "count-badge-waiting" not in response.content.decode()


@pytest.mark.django_db
def test_platform_staff_count_every_tenant(admin_client, tenant, other_tenant):
    _waiting(tenant, 2)
    _waiting(other_tenant, 1)
    response = admin_client.get(reverse("admin:index"))
    assert response.context["app_list"][0]["models"][0]["badge"] == 3


@pytest.mark.django_db
def test_the_waiting_count_is_one_query_however_many_threads(
    tenant, other_tenant, member, django_assert_num_queries
):
    _waiting(tenant, 5)
    _waiting(other_tenant, 5)
    user = member(tenant, "agent")
    factories.MembershipFactory(tenant=other_tenant, user=user, role="viewer")
    request = RequestFactory().get("/admin/")
    request.user = user
    # who the user is (roles, permissions) is read once per request anyway
    access.member_roles(user)
    access.is_platform_staff(user)
    with django_assert_num_queries(1):
        assert waiting_count(request) == 10
        assert waiting_count(request) == 10  # remembered for the request


@pytest.mark.django_db
def test_the_index_does_not_grow_with_the_waiting_threads(
    admin_client, tenant, django_assert_max_num_queries
):
    admin_client.get(reverse("admin:index"))
    _waiting(tenant, 1)
    with django_assert_max_num_queries(20) as before:
        admin_client.get(reverse("admin:index"))
    _waiting(tenant, 20)
    with django_assert_max_num_queries(len(before.captured_queries)):
        admin_client.get(reverse("admin:index"))


def test_the_inbox_link_opens_the_conversations_waiting_for_a_human():
    assert inbox_url() == "/admin/inbox/?needs_human=1"


@pytest.mark.django_db
def test_an_apps_own_page_keeps_djangos_list(admin_client):
    response = admin_client.get(reverse("admin:app_list", kwargs={"app_label": "tenants"}))
    assert response.status_code == 200
    assert [app["app_label"] for app in response.context["app_list"]] == ["tenants"]
