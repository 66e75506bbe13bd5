"""Bad input is a clear 4xx with the JSON envelope, and the schema says what the server refuses
(issue #10: the findings of a hostile probe and of schemathesis, one regression test each)."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from conversations.models import ChatThread
from core.api_base import csrf_failure
from flows.models import Flow
from tenants.api_keys import api_key_create
from tests import factories
from tests.api_helpers import error_of, key_client


@pytest.fixture
def channel(tenant):
    return factories.TwilioChannelFactory(tenant=tenant)


@pytest.fixture
def client(tenant):
    return key_client(tenant)


def _paths(response) -> set[str]:
    return {detail["path"] for detail in error_of(response)["details"]}


# --- date-time filters -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("route", "name"),
    [("thread-list", "updated_since"), ("contact-list", "created_since")],
)
@pytest.mark.parametrize(
    "value",
    [
        "2020-01-01T00:00:00-20:00",  # PostgreSQL refuses offsets of 16 hours or more (was a 500)
        "2020-01-01T00:00:00+16:00",
        "2020-01-01T00:00:00",  # no offset
        "2020-01-01",
        "2020-13-01T00:00:00Z",
        "yesterday",
        "",
    ],
)
def test_date_time_filters_refuse_what_they_cannot_read(
    client, tenant, channel, route, name, value
):
    factories.ThreadFactory(channel=channel)
    response = client.get(reverse(route, kwargs={"tenant": tenant.pk}), {name: value})
    assert response.status_code == 400
    assert _paths(response) == {name}


@pytest.mark.django_db
def test_date_time_filters_compare_in_utc_and_take_extreme_instants(client, tenant, channel):
    thread = factories.ThreadFactory(channel=channel)
    ChatThread.objects.filter(pk=thread.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    url = reverse("thread-list", kwargs={"tenant": tenant.pk})
    one_hour_ago_far_east = (timezone.now() - timedelta(hours=1)).astimezone(
        timezone.get_fixed_timezone(15 * 60 + 45)
    )

    def count(value: str) -> int:
        response = client.get(url, {"updated_since": value})
        assert response.status_code == 200, response.content
        return response.json()["count"]

    assert count(one_hour_ago_far_east.isoformat()) == 0
    assert count("0001-01-01T00:00:00+15:00") == 1  # before year 1 in UTC: everything
    assert count("9999-12-31T23:59:59-15:00") == 0  # after year 9999 in UTC: nothing
    assert count("2000-01-01T00:00:00z") == 1


# --- other filters --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("route", "query", "name"),
    [
        ("thread-list", "needs_human=maybe", "needs_human"),
        ("thread-list", "needs_human=1", "needs_human"),
        ("thread-list", "needs_human=", "needs_human"),
        ("thread-list", "status=", "status"),
        ("thread-list", "status=pending", "status"),
        ("thread-list", "status=open&status=closed", "status"),
        ("thread-list", "channel=not-a-uuid", "channel"),
        ("contact-list", "opted_out=null", "opted_out"),
        ("contact-list", "external_id=", "external_id"),
        ("flow-list", "is_active=null&is_active=null", "is_active"),
        ("thread-list", "page=", "page"),
        ("thread-list", "page=abc", "page"),
        ("thread-list", "page=0", "page"),
        ("thread-list", "page=last", "page"),
    ],
)
def test_filters_and_page_numbers_refuse_bad_values(client, tenant, route, query, name):
    response = client.get(f"{reverse(route, kwargs={'tenant': tenant.pk})}?{query}")
    assert response.status_code == 400, response.content
    assert _paths(response) == {name}


@pytest.mark.django_db
def test_a_page_past_the_last_one_is_still_a_404(client, tenant):
    for page in ("9", "2499701539669723648", "9" * 40):
        response = client.get(reverse("thread-list", kwargs={"tenant": tenant.pk}), {"page": page})
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"


@pytest.mark.django_db
def test_booleans_read_true_and_false_in_any_case(client, tenant, channel):
    factories.ThreadFactory(channel=channel, needs_human=True)
    url = reverse("thread-list", kwargs={"tenant": tenant.pk})
    assert client.get(url, {"needs_human": "TRUE"}).json()["count"] == 1
    assert client.get(url, {"needs_human": "false"}).json()["count"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["page_size=abc", "page_size=0", "page_size=201", "page_size="])
def test_message_page_size_is_refused_out_of_range(client, tenant, channel, query):
    thread = factories.ThreadFactory(channel=channel)
    url = reverse("thread-messages", kwargs={"tenant": tenant.pk, "thread": thread.pk})
    response = client.get(f"{url}?{query}")
    assert response.status_code == 400
    assert _paths(response) == {"page_size"}


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["days=0", "days=366", "days=abc", "days=", "days=1&days=2"])
def test_stats_days_out_of_range_is_refused(client, tenant, query):
    response = client.get(f"{reverse('stats', kwargs={'tenant': tenant.pk})}?{query}")
    assert response.status_code == 400
    assert _paths(response) == {"days"}


# --- bodies ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bodies_take_json_types_as_the_schema_states(client, tenant, channel):
    thread = factories.ThreadFactory(channel=channel)
    thread_url = reverse("thread-detail", kwargs={"tenant": tenant.pk, "thread": thread.pk})
    messages_url = reverse("thread-messages", kwargs={"tenant": tenant.pk, "thread": thread.pk})
    for url, body, name in [
        (thread_url, {"needs_human": "0"}, "needs_human"),
        (thread_url, {"needs_human": 1}, "needs_human"),
        (thread_url, {"status": "open", "nonsense": 1}, "nonsense"),
        (messages_url, {"text": 0}, "text"),
        (reverse("tenant-detail", kwargs={"tenant": tenant.pk}), {"name": 5}, "name"),
        (
            reverse("tenant-detail", kwargs={"tenant": tenant.pk}),
            {"owner_phone": " +5511988887777"},
            "owner_phone",
        ),
    ]:
        method = client.post if url == messages_url else client.patch
        response = method(url, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert _paths(response) == {name}
    thread.refresh_from_db()
    assert thread.needs_human is False
    assert not thread.messages.exists()


@pytest.mark.django_db
def test_a_form_post_is_a_415(client, tenant, channel):
    thread = factories.ThreadFactory(channel=channel)
    url = reverse("thread-detail", kwargs={"tenant": tenant.pk, "thread": thread.pk})
    response = client.patch(url, "needs_human=0", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


@pytest.mark.django_db
def test_a_flow_file_upload_still_reads_its_activate_flag(tenant, channel, staff_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    path = sorted((settings.BASE_DIR / "flows" / "examples").glob("*.json"))[0]
    upload = SimpleUploadedFile("flow.json", path.read_bytes(), "application/json")
    response = staff_client.post(
        reverse("flow-list", kwargs={"tenant": tenant.pk}),
        {"channel": str(channel.pk), "file": upload, "activate": "false"},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert Flow.objects.get(pk=response.json()["id"]).is_active is False


# --- unknown paths, methods and CSRF --------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options", "trace"])
@pytest.mark.parametrize("path", ["/api/nonexistent", "/api/tenants/{tenant}/api-keys/not-a-uuid/"])
def test_every_method_on_an_unknown_api_path_is_the_json_404(tenant, method, path):
    # given a client sending a key and (like a browser) enforcing CSRF
    _, raw_key = api_key_create(tenant=tenant, name="probe")
    browser = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    # when
    response = browser.generic(method.upper(), path.format(tenant=tenant.pk))
    # then
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.django_db
def test_an_unsupported_method_on_a_known_route_is_a_405_with_allow(tenant, staff_client):
    for client in (key_client(tenant), staff_client):
        for url in (reverse("tenant-list"), reverse("thread-list", kwargs={"tenant": tenant.pk})):
            response = client.generic("TRACE", url)
            assert response.status_code == 405, (url, response.content)
            assert error_of(response)["code"] == "method_not_allowed"
            assert "GET" in response["Allow"]


@pytest.mark.django_db
def test_csrf_failures_under_the_api_are_the_json_envelope():
    factory = RequestFactory()
    api = csrf_failure(factory.post("/api/controller/logout"), reason="CSRF token missing.")
    assert api.status_code == 403
    assert json.loads(api.content)["error"]["code"] == "csrf_failed"
    admin = csrf_failure(factory.post("/admin/login/"), reason="CSRF token missing.")
    assert admin.status_code == 403
    assert b"<html" in admin.content.lower()


@pytest.mark.django_db
def test_a_session_without_its_csrf_token_gets_csrf_failed(tenant, staff_user):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    response = browser.patch(
        reverse("tenant-detail", kwargs={"tenant": tenant.pk}), {"name": "x"}, format="json"
    )
    assert response.status_code == 403
    assert error_of(response)["code"] == "csrf_failed"


def test_the_admin_keeps_djangos_csrf_page(db):
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "x"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


# --- the schema states the rules ------------------------------------------------------------


def test_the_schema_states_the_rules_the_server_applies(client):
    spec = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = spec["paths"]

    def params(path: str) -> dict:
        return {p["name"]: p["schema"] for p in paths[path]["get"].get("parameters", [])}

    stats = params("/api/tenants/{tenant}/stats/")
    assert (stats["days"]["minimum"], stats["days"]["maximum"]) == (1, 365)
    threads = params("/api/tenants/{tenant}/threads/")
    assert threads["updated_since"]["pattern"].endswith("(0\\d|1[0-5]):[0-5]\\d)$")
    assert threads["page"]["minimum"] == 1
    assert "400" in paths["/api/tenants/{tenant}/threads/"]["get"]["responses"]
    assert params("/api/tenants/{tenant}/contacts/")["external_id"]["minLength"] == 1
    messages = params("/api/tenants/{tenant}/threads/{thread}/messages/")
    assert (messages["page_size"]["minimum"], messages["page_size"]["maximum"]) == (1, 200)
    components = spec["components"]["schemas"]
    assert components["TenantRequest"]["properties"]["owner_phone"]["oneOf"][0]["pattern"]
    # a channel's phone number may be empty (an Instagram channel has none)
    assert components["ChannelRequest"]["properties"]["phone_number"]["oneOf"][0]["pattern"]
    assert set(
        paths["/api/tenants/{tenant}/threads/{thread}/"]["patch"]["requestBody"]["content"]
    ) == {"application/json"}
