"""Every admin page, collected from the admin registry (each model admin's own URLs, custom
views included), for each role, for a member of another tenant and for a user who sees no
tenant. What each page needs is written here, independently of `tenants.access`; a model or
a page missing from the tables fails the sweep, so a new one cannot escape it."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from flows.models import Flow, FlowSession
from tenants.api_keys import api_key_create
from tenants.members import invitation_create
from tests import factories
from tests.roles import ALLOWED, KEYS, MANAGE, MEMBERS, PLATFORM, REPLY, USER_KINDS, VIEW, logged_in

# model -> (view, change, add, delete, change by POST); None: nobody (read-only pages)
TENANT_MODELS = {
    "tenants.tenant": (VIEW, MANAGE, PLATFORM, PLATFORM, MANAGE),
    "tenants.tenantapikey": (KEYS, KEYS, KEYS, KEYS, KEYS),
    "tenants.tenantmembership": (MEMBERS, MEMBERS, None, MEMBERS, MEMBERS),
    "tenants.tenantinvitation": (MEMBERS, None, MEMBERS, MEMBERS, None),
    "channels_app.channelinstance": (VIEW, MANAGE, MANAGE, MANAGE, MANAGE),
    "flows.flow": (VIEW, MANAGE, MANAGE, None, MANAGE),
    "flows.flowsession": (VIEW, None, None, None, None),
    "conversations.contact": (VIEW, None, None, None, None),
    "conversations.chatthread": (VIEW, None, None, None, REPLY),  # the inbox: replies, actions
    "conversations.message": (VIEW, None, None, None, None),
}
# Django's own and django-axes' models: superusers only (no member holds their permissions).
PLATFORM_MODELS = {"auth.user", "auth.group", "axes.accessattempt", "axes.accesslog"}
PLATFORM_MODELS |= {"axes.accessfailurelog"}
# Custom pages: name -> which column of TENANT_MODELS they need, and whether they take an id.
CUSTOM_PAGES = {
    "flows_flow_upload": ("add", False),
    "flows_flow_nodes": ("view", True),
    "auth_user_password_change": ("change", True),
}
_COLUMNS = {"view": 0, "change": 1, "add": 2, "delete": 3}
# A GET of the change page needs only the view action (Django shows it read-only); what
# saving it needs is the last column.
_GET_COLUMNS = {**_COLUMNS, "change": 0}


def _label(model) -> str:
    return f"{model._meta.app_label}.{model._meta.model_name}"


def test_every_registered_model_and_page_is_in_the_tables():
    labels = {_label(model) for model in admin.site._registry}
    assert labels - set(TENANT_MODELS) - PLATFORM_MODELS == set()
    for model, model_admin in admin.site._registry.items():
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        for pattern in model_admin.get_urls():
            if pattern.name is None:  # Django's <id>/ -> <id>/change/ redirect
                continue
            suffix = pattern.name.removeprefix(prefix)
            assert (
                suffix in _COLUMNS
                or suffix in ("changelist", "history")
                or (pattern.name in CUSTOM_PAGES)
            ), f"classify the admin page {pattern.name}"


@pytest.fixture
def objects(tenant, django_user_model):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    thread = factories.ThreadFactory(channel=channel)
    message = factories.MessageFactory(thread=thread)
    flow = Flow.objects.create(
        tenant=tenant, channel=channel, flow_id="f", version=1, name="F", definition={}
    )
    session = FlowSession.objects.create(
        tenant=tenant, thread=thread, flow=flow, status="completed", variables={}
    )
    api_key, _ = api_key_create(tenant=tenant, name="crm")
    membership = factories.MembershipFactory(tenant=tenant, role="viewer")
    invitation, _ = invitation_create(tenant=tenant, email="new@example.com", role="agent")
    return {
        "tenants.tenantinvitation": invitation,
        "tenants.tenant": tenant,
        "tenants.tenantapikey": api_key,
        "tenants.tenantmembership": membership,
        "channels_app.channelinstance": channel,
        "flows.flow": flow,
        "flows.flowsession": session,
        "conversations.contact": thread.contact,
        "conversations.chatthread": thread,
        "conversations.message": message,
        "auth.user": membership.user,
        "auth.group": Group.objects.get(name="Platform staff"),
    }


def _pages(objects):
    """(label, kind, url) of every named admin page of every registered model."""
    for model, model_admin in admin.site._registry.items():
        label = _label(model)
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        for pattern in model_admin.get_urls():
            if pattern.name is None:
                continue
            kind = CUSTOM_PAGES.get(pattern.name, (pattern.name.removeprefix(prefix), None))[0]
            names = list(pattern.pattern.converters)
            takes_id = bool(names)
            if takes_id and label not in objects:
                continue  # no such object to address (axes rows live in the cache here)
            kwargs = {names[0]: objects[label].pk} if takes_id else {}
            yield label, kind, takes_id, reverse(f"admin:{pattern.name}", kwargs=kwargs)


def _expected_get(label, kind, allowed, url, principal):
    if label in PLATFORM_MODELS:  # superusers: Django's own rules, not ours to sweep
        return None if principal == "superuser" else 403
    column = TENANT_MODELS[label][_GET_COLUMNS.get(kind, 0)]  # changelist and history: view
    if column is None or column not in allowed:
        return 403
    if label == "flows.flow" and url.endswith("/add/"):
        return 302  # the add page is the upload page
    return 200


@pytest.mark.django_db
@pytest.mark.parametrize("kind", USER_KINDS)
def test_each_role_sees_exactly_its_admin_pages(kind, objects, tenant, django_user_model, member):
    # given: a user of `kind` on `tenant`
    client = logged_in(Client(), kind, tenant, django_user_model, member)
    allowed = ALLOWED[kind]
    failures = []
    assert client.get(reverse("admin:index")).status_code == 200
    # when: they open every page
    for label, page, _, url in _pages(objects):
        expected = _expected_get(label, page, allowed, url, kind)
        status = client.get(url).status_code
        if expected is None:
            expected = status if status < 500 else "below 500"
        if status != expected:
            failures.append((url, "GET", status, expected))
        # and send every change form (an empty one: refused, or re-shown with its errors)
        if page == "change" and label in TENANT_MODELS:
            needed = TENANT_MODELS[label][4]
            status = client.post(url, {}).status_code
            if needed in allowed and status not in (200, 302):
                failures.append((url, "POST", status, "200 or 302"))
            if needed not in allowed and status != 403:
                failures.append((url, "POST", status, 403))
    # then: each answer is what the role allows
    assert failures == []


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "agent", "viewer"])
def test_another_tenants_objects_are_404_in_the_admin(role, objects, other_tenant, member):
    client = Client()
    client.force_login(member(other_tenant, role))
    failures = []
    for label, _, takes_id, url in _pages(objects):
        if not takes_id or label in PLATFORM_MODELS:
            continue
        for method in ("get", "post"):
            status = getattr(client, method)(url).status_code
            if status != 404:
                failures.append((url, method, status))
    assert failures == []
    # and their lists hold nothing of the other tenant
    for name in ("conversations_chatthread", "conversations_contact", "tenants_tenant"):
        page = client.get(reverse(f"admin:{name}_changelist"))
        assert page.status_code == 200
        assert objects["tenants.tenant"].name not in page.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("is_staff", [False, True])
def test_a_user_with_no_tenant_cannot_use_the_admin(is_staff, objects, django_user_model):
    user = django_user_model.objects.create_user(
        username="temp", password="pw-temp-12345", is_staff=is_staff
    )
    client = Client()
    login = client.post(reverse("admin:login"), {"username": "temp", "password": "pw-temp-12345"})
    assert login.status_code == 200  # the form again, with the wrong-password message
    assert "enter the correct username and password" in login.content.decode()
    client.force_login(user)
    for _, _, _, url in _pages(objects):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response.url, url


@pytest.mark.django_db
def test_the_tenant_autocomplete_offers_only_the_members_tenants(tenant, other_tenant, member):
    client = Client()
    client.force_login(member(other_tenant, "owner"))
    response = client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": "channels_app",
            "model_name": "channelinstance",
            "field_name": "tenant",
            "term": "",
        },
    )
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(other_tenant.pk)]


@pytest.mark.django_db
def test_the_flow_upload_offers_only_channels_of_owned_tenants(tenant, other_tenant, member):
    mine = factories.TwilioChannelFactory(tenant=other_tenant)
    factories.TwilioChannelFactory(tenant=tenant)
    user = member(other_tenant, "owner")
    factories.MembershipFactory(tenant=tenant, user=user, role="viewer")
    client = Client()
    client.force_login(user)
    page = client.get(reverse("admin:flows_flow_upload"))
    assert list(page.context["form"].fields["channel"].queryset) == [mine]
