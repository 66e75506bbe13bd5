"""Every tenant-scoped route, collected from the URL resolver, refuses other tenants' keys
(404, as for a missing id) and anonymous requests (401). A new route is covered automatically."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from flows.models import Flow
from tests import factories
from tests.api_helpers import error_of, key_client

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
        return sorted(actions)
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
    return {
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
def test_a_non_staff_session_is_refused(owned, tenant, django_user_model):
    user = django_user_model.objects.create_user(username="clerk", password="pw-12345678")
    client = APIClient()
    client.force_login(user)
    assert client.get(reverse("channel-list", kwargs={"tenant": tenant.pk})).status_code == 403
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
