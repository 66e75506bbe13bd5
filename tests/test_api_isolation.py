"""Every tenant-scoped route, collected from the URL resolver, refuses other tenants' keys and
members (404, as for a missing id) and anonymous requests (401), and answers each role as the
table of `REQUIRED` and `ALLOWED` below says. A new route is covered automatically: the sweep
fails until the route is in the table."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from flows.models import Flow
from tests import factories
from tests.api_helpers import error_of, key_client
from tests.roles import (
    ALLOWED,
    ERASE,
    EXPORT,
    KEYS,
    MANAGE,
    MEMBERS,
    PLATFORM,
    REPLY,
    VIEW,
    logged_in,
)

WRITE_BODIES = {"post": {}, "patch": {}, "put": {}}


def _kwarg_names(pattern) -> set[str]:
    if hasattr(pattern, "converters") and pattern.converters:
        return set(pattern.converters)
    regex = getattr(pattern, "regex", None)
    return set(regex.groupindex) if regex is not None else set()


def _walk(patterns, kwargs=frozenset()):
    for entry in patterns:
        names = kwargs | _kwarg_names(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, names)
        elif isinstance(entry, URLPattern):
            yield entry, names


def _methods(callback) -> list[str]:
    actions = getattr(callback, "actions", None)
    if actions:
        allowed = callback.cls.http_method_names
        return sorted(method for method in actions if method in allowed)
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is None:
        return []
    return sorted(
        method
        for method in ("get", "post", "put", "patch", "delete")
        if hasattr(view_class, method) and method in view_class.http_method_names
    )


def tenant_routes() -> list[tuple[str, frozenset[str], list[str]]]:
    """(url name, kwarg names, methods) of every route that takes a tenant, plus the list."""
    routes = []
    for entry, names in _walk(get_resolver().url_patterns):
        if entry.name and ("tenant" in names or entry.name == "tenant-list"):
            routes.append((entry.name, frozenset(names), _methods(entry.callback)))
    return routes


ROUTES = tenant_routes()


def test_the_sweep_sees_every_resource():
    names = {name for name, _, _ in ROUTES}
    assert {
        "tenant-list",
        "tenant-detail",
        "api-key-list",
        "api-key-detail",
        "channel-list",
        "channel-detail",
        "channel-templates",
        "channel-templates-sync",
        "flow-list",
        "flow-detail",
        "flow-validate",
        "contact-list",
        "contact-detail",
        "contact-export",
        "contact-erase",
        "thread-list",
        "thread-detail",
        "thread-messages",
        "stats",
        "member-list",
        "member-detail",
        "invitation-list",
        "invitation-detail",
        "webhook-list",
        "webhook-detail",
        "webhook-rotate-secret",
        "webhook-delivery-list",
        "webhook-delivery-detail",
        "webhook-delivery-replay",
    } <= names
    assert all(methods for _, _, methods in ROUTES)


@pytest.fixture
def owned(tenant):
    """One object of each kind, all belonging to `tenant`."""
    channel = factories.TwilioChannelFactory(tenant=tenant)
    thread = factories.ThreadFactory(channel=channel)
    factories.MessageFactory(thread=thread)
    flow = Flow.objects.create(
        tenant=tenant,
        channel=channel,
        flow_id="welcome",
        version=1,
        name="Welcome",
        definition={},
        is_active=False,
    )
    from tenants.api_keys import api_key_create

    api_key, _ = api_key_create(tenant=tenant, name="crm")
    membership = factories.MembershipFactory(tenant=tenant, role="viewer")
    from tenants.members import invitation_create

    invitation, _ = invitation_create(tenant=tenant, email="new@example.com", role="agent")
    webhook, delivery = factories.webhook_with_delivery(tenant)
    return {
        "webhook": webhook.pk,
        "delivery": delivery.pk,
        "member": membership.pk,
        "invitation": invitation.pk,
        "tenant": tenant.pk,
        "channel": channel.pk,
        "thread": thread.pk,
        "contact": thread.contact_id,
        "flow": flow.pk,
        "key": api_key.pk,
    }


def _urls(owned):
    for name, names, methods in ROUTES:
        url = reverse(name, kwargs={kwarg: owned[kwarg] for kwarg in names})
        for method in methods:
            yield name, url, method


def _call(client, method, url):
    return getattr(client, method)(url, WRITE_BODIES.get(method), format="json")


@pytest.mark.django_db
def test_another_tenants_key_gets_404_on_every_route_and_method(owned, other_tenant):
    # given a key of another tenant
    client = key_client(other_tenant)
    # when it calls every route of `tenant` with every method
    failures = []
    for name, url, method in _urls(owned):
        response = _call(client, method, url)
        if response.status_code != 404 or error_of(response)["code"] != "not_found":
            failures.append((name, method, response.status_code))
    # then each answer is the same 404 as for an id that does not exist
    assert failures == []


@pytest.mark.django_db
def test_no_credentials_get_401_on_every_route_and_method(owned):
    client = APIClient()
    failures = []
    for name, url, method in _urls(owned):
        response = _call(client, method, url)
        if response.status_code != 401 or error_of(response)["code"] != "not_authenticated":
            failures.append((name, method, response.status_code))
    assert failures == []


@pytest.mark.django_db
def test_a_revoked_or_malformed_key_gets_401(owned, tenant):
    from tenants.api_keys import api_key_create, api_key_revoke

    api_key, raw_key = api_key_create(tenant=tenant, name="old")
    api_key_revoke(api_key=api_key)
    url = reverse("channel-list", kwargs={"tenant": tenant.pk})
    for header in (
        f"Api-Key {raw_key}",
        f"Api-Key {raw_key[:-1]}x",
        "Api-Key",
        "Api-Key a b",
        "Api-Key chk_00000000.nope",
        "Api-Key ünïcode",
    ):
        response = APIClient().get(url, HTTP_AUTHORIZATION=header)
        assert response.status_code == 401, header
        assert error_of(response)["code"] == "not_authenticated"
        assert raw_key not in response.content.decode()


@pytest.mark.django_db
def test_own_tenants_key_reaches_its_routes_but_staff_only_ones_are_403(owned, tenant):
    client = key_client(tenant)
    assert client.get(reverse("channel-list", kwargs={"tenant": tenant.pk})).status_code == 200
    assert client.get(reverse("tenant-detail", kwargs={"tenant": tenant.pk})).status_code == 200
    for name, kwargs, method in (
        ("api-key-list", {"tenant": tenant.pk}, "get"),
        ("api-key-list", {"tenant": tenant.pk}, "post"),
        ("api-key-detail", {"tenant": tenant.pk, "key": owned["key"]}, "delete"),
        ("tenant-detail", {"tenant": tenant.pk}, "delete"),
    ):
        response = _call(client, method, reverse(name, kwargs=kwargs))
        assert response.status_code == 403, (name, method)
        assert error_of(response)["code"] == "permission_denied"
    # and the tenant list does not exist for a key at all
    assert client.get(reverse("tenant-list")).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("is_staff", [False, True])
def test_a_user_with_no_tenant_is_refused_everywhere(owned, is_staff, django_user_model):
    # given: a user who is neither platform staff nor a member (is_staff alone grants nothing)
    user = django_user_model.objects.create_user(
        username="clerk", password="pw-12345678", is_staff=is_staff
    )
    client = APIClient()
    client.force_login(user)
    # when / then: every route and method is a 403, and nothing changes
    failures = []
    for name, url, method in _urls(owned):
        response = _call(client, method, url)
        if response.status_code != 403 or error_of(response)["code"] != "permission_denied":
            failures.append((name, method, response.status_code))
    assert failures == []
    assert client.get(reverse("tenant-list")).status_code == 403


@pytest.mark.django_db
def test_unknown_and_malformed_ids_are_json_404s(staff_client, tenant):
    for url in (
        "/api/tenants/not-a-uuid/",
        "/api/tenants/not-a-uuid/channels/",
        f"/api/tenants/{tenant.pk}/channels/123/",
        f"/api/tenants/{tenant.pk}/threads/00000000-0000-0000-0000-000000000000/messages/",
        f"/api/tenants/{tenant.pk}/nothing-here/",
        "/api/tenants/00000000-0000-0000-0000-000000000000/",
    ):
        response = staff_client.get(url)
        assert response.status_code == 404, url
        assert error_of(response)["code"] == "not_found"


# --- Roles -----------------------------------------------------------------------------------
# What each route needs, written here independently of `tenants.access` (what each kind of
# principal may do is in tests/roles.py). A route missing from REQUIRED fails the sweep.

REQUIRED = {
    ("tenant-list", "get"): VIEW,
    ("tenant-list", "post"): PLATFORM,
    ("tenant-detail", "get"): VIEW,
    ("tenant-detail", "patch"): MANAGE,
    ("tenant-detail", "delete"): PLATFORM,
    ("api-key-list", "get"): KEYS,
    ("api-key-list", "post"): KEYS,
    ("api-key-detail", "delete"): KEYS,
    ("member-list", "get"): MEMBERS,
    ("invitation-list", "get"): MEMBERS,
    ("invitation-list", "post"): MEMBERS,
    ("invitation-detail", "get"): MEMBERS,
    ("invitation-detail", "delete"): MEMBERS,
    ("member-detail", "get"): MEMBERS,
    ("member-detail", "patch"): MEMBERS,
    ("member-detail", "delete"): MEMBERS,
    ("channel-list", "get"): VIEW,
    ("channel-list", "post"): MANAGE,
    ("channel-detail", "get"): VIEW,
    ("channel-detail", "patch"): MANAGE,
    ("channel-detail", "delete"): MANAGE,
    ("channel-templates", "get"): VIEW,
    ("channel-templates-sync", "post"): MANAGE,
    ("flow-list", "get"): VIEW,
    ("flow-list", "post"): MANAGE,
    ("flow-detail", "get"): VIEW,
    ("flow-detail", "patch"): MANAGE,
    ("flow-detail", "delete"): MANAGE,
    ("flow-validate", "post"): MANAGE,
    ("contact-list", "get"): VIEW,
    ("contact-detail", "get"): VIEW,
    ("contact-export", "get"): EXPORT,
    ("contact-erase", "post"): ERASE,
    ("thread-list", "get"): VIEW,
    ("thread-detail", "get"): VIEW,
    ("thread-detail", "patch"): REPLY,
    ("thread-messages", "get"): VIEW,
    ("thread-messages", "post"): REPLY,
    ("stats", "get"): VIEW,
    # Webhooks to the tenant's systems are integration settings: owners and keys, not agents
    # or viewers (the URLs and deliveries say where the tenant's data goes).
    ("webhook-list", "get"): MANAGE,
    ("webhook-list", "post"): MANAGE,
    ("webhook-detail", "get"): MANAGE,
    ("webhook-detail", "patch"): MANAGE,
    ("webhook-detail", "delete"): MANAGE,
    ("webhook-rotate-secret", "post"): MANAGE,
    ("webhook-delivery-list", "get"): MANAGE,
    ("webhook-delivery-detail", "get"): MANAGE,
    ("webhook-delivery-replay", "post"): MANAGE,
}


def test_every_route_and_method_has_a_required_action():
    swept = {(name, method) for name, _, methods in ROUTES for method in methods}
    assert swept - set(REQUIRED) == set(), "add the new route to REQUIRED"


def _ordered_calls(owned):
    """Reads, then writes, then deletes, the tenant's own deletion last: every call still
    finds what it addresses."""
    calls = list(_urls(owned))
    rank = {"get": 0, "post": 1, "patch": 2, "delete": 3}
    return sorted(calls, key=lambda c: (c[0] == "tenant-detail" and c[2] == "delete", rank[c[2]]))


def _client_for(kind, tenant, django_user_model, member):
    if kind == "key":
        return key_client(tenant)
    return logged_in(APIClient(), kind, tenant, django_user_model, member)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(ALLOWED))
def test_each_role_gets_exactly_its_actions(kind, owned, tenant, django_user_model, member):
    # given: a principal of `kind` on `tenant`
    client = _client_for(kind, tenant, django_user_model, member)
    # when: it calls every route of the tenant with every method
    failures = []
    for name, url, method in _ordered_calls(owned):
        needed = REQUIRED[(name, method)]
        response = _call(client, method, url)
        allowed = needed in ALLOWED[kind]
        if kind == "key" and name == "tenant-list":  # no tenant list exists for a key
            expected_ok, expected_code = False, 404
        else:
            expected_ok, expected_code = allowed, 403
        if expected_ok and response.status_code in (401, 403, 404, 405):
            failures.append((name, method, response.status_code, "should be allowed"))
        if not expected_ok and response.status_code != expected_code:
            failures.append((name, method, response.status_code, f"should be {expected_code}"))
    # then: allowed calls pass the permission check; the others are refused
    assert failures == []


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "agent", "viewer"])
def test_a_member_of_another_tenant_gets_404_on_every_route(role, owned, other_tenant, member):
    client = APIClient()
    client.force_login(member(other_tenant, role))
    failures = []
    for name, url, method in _urls(owned):
        if name == "tenant-list":
            continue
        response = _call(client, method, url)
        if response.status_code != 404 or error_of(response)["code"] != "not_found":
            failures.append((name, method, response.status_code))
    assert failures == []
    # and the tenant list shows only their own tenant
    listed = client.get(reverse("tenant-list")).json()["results"]
    assert [row["id"] for row in listed] == [str(other_tenant.pk)]


@pytest.mark.django_db
def test_a_member_of_a_switched_off_tenant_sees_it_no_more(tenant, member):
    client = APIClient()
    client.force_login(member(tenant, "owner"))
    url = reverse("tenant-detail", kwargs={"tenant": tenant.pk})
    assert client.get(url).status_code == 200
    tenant.is_active = False
    tenant.save()
    assert client.get(url).status_code == 403  # no tenant left: no access at all


def test_every_tenant_view_scopes_one_way() -> None:
    """Tenant views scope through the shared base: they choose rows in `base_queryset` and
    nested parents with `tenant_parent`, and never replace the scoped `get_queryset`."""
    from tenants.api_base import TenantScopedMixin

    views = {
        getattr(entry.callback, "cls", None) or getattr(entry.callback, "view_class", None)
        for entry, _names in _walk(get_resolver().url_patterns)
    }
    scoped = [view for view in views if view and issubclass(view, TenantScopedMixin)]
    assert len(scoped) >= 8
    for view in scoped:
        owner = next(k for k in view.__mro__ if "get_queryset" in vars(k))
        assert owner is TenantScopedMixin, f"{view.__name__} overrides get_queryset"
