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
from tests.roles import (
    ALLOWED,
    ERASE,
    EXPORT,
    KEYS,
    MANAGE,
    MEMBERS,
    PLATFORM,
    REPLY,
    USER_KINDS,
    VIEW,
    logged_in,
)

# model -> (view, change, add, delete, change by POST); None: nobody (read-only pages)
TENANT_MODELS = {
    "tenants.tenant": (VIEW, MANAGE, PLATFORM, PLATFORM, MANAGE),
    "tenants.tenantapikey": (KEYS, KEYS, KEYS, KEYS, KEYS),
    "tenants.tenantmembership": (MEMBERS, MEMBERS, None, MEMBERS, MEMBERS),
    "tenants.tenantinvitation": (MEMBERS, None, MEMBERS, MEMBERS, None),
    "channels_app.channelinstance": (VIEW, MANAGE, MANAGE, MANAGE, MANAGE),
    # synced from the provider: read-only for everyone
    "channels_app.channeltemplate": (VIEW, None, None, None, None),
    "flows.flow": (VIEW, MANAGE, MANAGE, None, MANAGE),
    "flows.flowsession": (VIEW, None, None, None, None),
    "conversations.contact": (VIEW, None, None, None, None),
    # a thread's page leads to its conversation in the inbox (a redirect, for GET and POST)
    "conversations.chatthread": (VIEW, None, None, None, VIEW),
    "conversations.message": (VIEW, None, None, None, None),
    "integrations.webhookendpoint": (MANAGE, MANAGE, MANAGE, MANAGE, MANAGE),
    "integrations.webhookdelivery": (MANAGE, None, None, None, None),
}
# Django's own and django-axes' models: superusers only (no member holds their permissions).
PLATFORM_MODELS = {"auth.user", "auth.group", "axes.accessattempt", "axes.accesslog"}
PLATFORM_MODELS |= {"axes.accessfailurelog"}
# Custom pages: name -> what they need, whether they take an id, and what a GET answers when
# allowed. What they need is a column of TENANT_MODELS ("view", "change", "add", "delete") or
# an action of tests.roles (EXPORT, ERASE) named directly.
CUSTOM_PAGES = {
    "flows_flow_upload": ("add", False, 200),
    "flows_flow_nodes": ("view", True, 200),
    "auth_user_password_change": ("change", True, 200),
    "channels_app_channelinstance_test_message": (MANAGE, True, 200),  # sends: owners only
    "channels_app_channelinstance_sync_templates": (MANAGE, True, 405),  # a POST syncs
    "conversations_contact_export": (EXPORT, True, 405),  # the download is a POST
    "conversations_contact_erase": (ERASE, True, 200),  # GET: the confirmation page
}
# The same page's POST, for custom pages that have one: what a POST without its fields answers
# when allowed (None: allowed roles are not posted to here; see the page's own tests).
CUSTOM_POSTS = {
    "conversations_contact_export": 200,  # the download itself
    "conversations_contact_erase": 200,  # the form again: the word was not typed
    # back to the templates with the outcome (here the provider cannot be reached)
    "channels_app_channelinstance_sync_templates": 302,
}
_COLUMNS = {"view": 0, "change": 1, "add": 2, "delete": 3}
# A GET of the change page needs only the view action (Django shows it read-only); what
# saving it needs is the last column. A page that acts ("act": its GET is already the form
# that acts, e.g. sending a test message) needs the change column for a GET too.
_GET_COLUMNS = {**_COLUMNS, "change": 0, "act": 1}


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
    template = factories.ChannelTemplateFactory(channel=channel)
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
    webhook, delivery = factories.webhook_with_delivery(tenant)
    return {
        "integrations.webhookendpoint": webhook,
        "integrations.webhookdelivery": delivery,
        "tenants.tenantinvitation": invitation,
        "tenants.tenant": tenant,
        "tenants.tenantapikey": api_key,
        "tenants.tenantmembership": membership,
        "channels_app.channelinstance": channel,
        "channels_app.channeltemplate": template,
        "flows.flow": flow,
        "flows.flowsession": session,
        "conversations.contact": thread.contact,
        "conversations.chatthread": thread,
        "conversations.message": message,
        "auth.user": membership.user,
        "auth.group": Group.objects.get(name="Platform staff"),
    }


def _pages(objects):
    """(label, kind, takes_id, url, page name) of every named admin page of every registered
    model; `kind` is a column name or, for a custom page, what it needs."""
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
            yield (
                label,
                kind,
                takes_id,
                reverse(f"admin:{pattern.name}", kwargs=kwargs),
                pattern.name,
            )


def _expected_get(label, kind, allowed, url, principal, name):
    if label in PLATFORM_MODELS:  # superusers: Django's own rules, not ours to sweep
        return None if principal == "superuser" else 403
    if kind not in _COLUMNS and name in CUSTOM_PAGES:  # a custom page needing an action
        return CUSTOM_PAGES[name][2] if kind in allowed else 403
    column = TENANT_MODELS[label][_GET_COLUMNS.get(kind, 0)]  # changelist and history: view
    if column is None or column not in allowed:
        return 403
    if label == "flows.flow" and url.endswith("/add/"):
        return 302  # the add page is the upload page
    if label == "conversations.chatthread" and url.endswith("/change/"):
        return 302  # to the conversation in the inbox
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
    for label, page, _, url, name in _pages(objects):
        expected = _expected_get(label, page, allowed, url, kind, name)
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
        # and post to every custom page that needs an action (an empty form for the erasure)
        if name in CUSTOM_POSTS and label in TENANT_MODELS:
            status = client.post(url, {}).status_code
            expected = CUSTOM_POSTS[name] if page in allowed else 403
            if status != expected:
                failures.append((url, "POST", status, expected))
    # then: each answer is what the role allows
    assert failures == []


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "agent", "viewer"])
def test_another_tenants_objects_are_404_in_the_admin(role, objects, other_tenant, member):
    client = Client()
    client.force_login(member(other_tenant, role))
    failures = []
    for label, _, takes_id, url, _ in _pages(objects):
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
    for _, _, _, url, _ in _pages(objects):
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


# --- Pages of the site that belong to no model (the inbox): name -> (method, action) -----------

SITE_PAGES = {
    "inbox": ("get", VIEW),
    "inbox-thread": ("get", VIEW),
    "inbox-thread-updates": ("get", VIEW),
    "inbox-thread-act": ("post", REPLY),
    "inbox-media": ("get", VIEW),
}


@pytest.fixture
def site_objects(objects):
    from django.core.files.base import ContentFile

    from conversations.models import MessageAttachment

    attachment = MessageAttachment.objects.create(
        message=objects["conversations.message"],
        media_type="image",
        content_type="image/png",
        download_status="stored",
    )
    attachment.file.save("a.png", ContentFile(b"png"), save=True)
    return {"thread_id": objects["conversations.chatthread"].pk, "attachment_id": attachment.pk}


def _site_pages(site_objects):
    for route, _, name in admin.site.pages():
        names = [part.split(">")[0].split(":")[-1] for part in route.split("<")[1:]]
        yield name, reverse(f"admin:{name}", kwargs={n: site_objects[n] for n in names}), names


def test_every_site_page_is_in_the_table():
    assert {name for _, _, name in admin.site.pages()} == set(SITE_PAGES)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", USER_KINDS)
def test_each_role_gets_exactly_its_site_pages(
    kind, site_objects, tenant, django_user_model, member
):
    client = logged_in(Client(), kind, tenant, django_user_model, member)
    failures = []
    for name, url, _ in _site_pages(site_objects):
        method, needed = SITE_PAGES[name]
        data = {"action": "note", "text": "from the sweep"} if method == "post" else {}
        status = getattr(client, method)(url, data).status_code
        allowed = needed in ALLOWED[kind]
        if allowed and status not in (200, 204, 302):
            failures.append((name, status, "allowed"))
        if not allowed and status != 403:
            failures.append((name, status, 403))
    assert failures == []


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "agent", "viewer"])
def test_another_tenants_conversation_is_404_on_every_site_page(
    role, site_objects, other_tenant, member
):
    client = Client()
    client.force_login(member(other_tenant, role))
    failures = []
    for name, url, names in _site_pages(site_objects):
        if not names:
            continue
        status = getattr(client, SITE_PAGES[name][0])(url, {"action": "note", "text": "x"})
        if status.status_code != 404:
            failures.append((name, status.status_code))
    assert failures == []
