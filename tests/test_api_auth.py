"""Staff login of the API (/api/controller/...) and tenant API keys."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tenants.api_keys import api_key_authenticate, api_key_create, api_key_hash
from tenants.models import TenantAPIKey
from tests.api_helpers import error_of

AUTH = "/api/controller/auth"


def login(client, username="staff", password="staff-pass-1234"):
    return client.post(AUTH, {"username": username, "password": password}, format="json")


@pytest.fixture
def csrf_client():
    return APIClient(enforce_csrf_checks=True)


@pytest.mark.django_db
def test_staff_login_sets_a_24h_session_and_csrf_cookie(csrf_client, staff_user, tenant):
    response = login(csrf_client)
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["username"] == "staff"
    session_cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert int(session_cookie["max-age"]) == 24 * 60 * 60
    assert response.cookies[settings.CSRF_COOKIE_NAME].value
    # the session reaches the API and /me
    assert csrf_client.get("/api/controller/me").json()["username"] == "staff"
    assert csrf_client.get(reverse("tenant-list")).status_code == 200


@pytest.mark.django_db
def test_unsafe_session_requests_need_the_csrf_token(csrf_client, staff_user, tenant):
    token = login(csrf_client).json()["csrf_token"]
    url = reverse("channel-list", kwargs={"tenant": tenant.pk})
    body = {"provider": "twilio", "phone_number": "+14155238886"}
    refused = csrf_client.post(url, body, format="json")
    assert refused.status_code == 403
    assert "CSRF" in error_of(refused)["message"]
    accepted = csrf_client.post(url, body, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


@pytest.mark.django_db
def test_logout_ends_the_session(csrf_client, staff_user):
    token = login(csrf_client).json()["csrf_token"]
    assert csrf_client.post("/api/controller/logout", HTTP_X_CSRFTOKEN=token).status_code == 204
    response = csrf_client.get("/api/controller/me")
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"


@pytest.mark.django_db
def test_wrong_password_and_non_staff_users_get_the_same_401(
    api_client, staff_user, django_user_model
):
    django_user_model.objects.create_user(username="clerk", password="clerk-pass-1234")
    wrong = login(api_client, password="nope")
    not_staff = login(api_client, username="clerk", password="clerk-pass-1234")
    assert wrong.status_code == not_staff.status_code == 401
    assert error_of(wrong) == error_of(not_staff)
    assert "nope" not in wrong.content.decode()


@pytest.mark.django_db
def test_malformed_login_body_is_400(api_client):
    response = api_client.post(AUTH, {"username": "x"}, format="json")
    assert response.status_code == 400
    assert [d["path"] for d in error_of(response)["details"]] == ["password"]


@pytest.mark.django_db
def test_repeated_failures_lock_out_with_429_and_retry_after(api_client, staff_user):
    # given failures up to the limit
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [login(api_client, password="wrong").status_code for _ in range(limit)]
    # then the last one is already a lockout
    assert statuses == [401] * (limit - 1) + [429]
    # and even the right password is refused, with a JSON error and Retry-After
    response = login(api_client)
    assert response.status_code == 429
    assert error_of(response)["code"] == "throttled"
    cool_off = int(timedelta(hours=settings.AXES_COOLOFF_TIME).total_seconds())
    assert 0 < int(response["Retry-After"]) <= cool_off


@pytest.mark.django_db
def test_the_admin_login_shares_the_lockout(api_client, client, staff_user):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(api_client, password="wrong")
    response = client.post(
        reverse("admin:login"), {"username": "staff", "password": "staff-pass-1234"}
    )
    assert response.status_code == 429


@pytest.mark.django_db
def test_api_keys_are_stored_hashed_and_found_by_prefix(tenant):
    api_key, raw_key = api_key_create(tenant=tenant, name="crm")
    prefix, secret = raw_key.split(".")
    assert prefix == api_key.prefix and prefix.startswith("chk_") and len(prefix) == 12
    assert len(secret) >= 32
    stored = TenantAPIKey.objects.get(pk=api_key.pk)
    assert stored.hashed_key == api_key_hash(raw_key) != raw_key
    assert raw_key not in str(TenantAPIKey.objects.filter(pk=api_key.pk).values().get())
    assert api_key_authenticate(raw_key=raw_key).pk == api_key.pk
    assert api_key_authenticate(raw_key=f"{prefix}.{'x' * len(secret)}") is None


@pytest.mark.django_db
def test_last_used_at_is_written_at_most_once_a_minute(tenant, django_assert_num_queries):
    api_key, raw_key = api_key_create(tenant=tenant, name="crm")
    now = timezone.now()
    api_key_authenticate(raw_key=raw_key, now=now)
    first = TenantAPIKey.objects.get(pk=api_key.pk).last_used_at
    assert first == now
    with django_assert_num_queries(1):  # the lookup only, no write
        api_key_authenticate(raw_key=raw_key, now=now + timedelta(seconds=30))
    assert TenantAPIKey.objects.get(pk=api_key.pk).last_used_at == first
    api_key_authenticate(raw_key=raw_key, now=now + timedelta(seconds=61))
    assert TenantAPIKey.objects.get(pk=api_key.pk).last_used_at == now + timedelta(seconds=61)


@pytest.mark.django_db
def test_keys_of_deleted_or_inactive_tenants_stop_working(tenant):
    _, raw_key = api_key_create(tenant=tenant, name="crm")
    tenant.is_active = False
    tenant.save()
    assert api_key_authenticate(raw_key=raw_key) is None
    tenant.is_active = True
    tenant.save()
    assert api_key_authenticate(raw_key=raw_key) is not None
    tenant.soft_delete()
    assert api_key_authenticate(raw_key=raw_key) is None


@pytest.mark.django_db
def test_behind_a_trusted_proxy_each_client_is_locked_out_on_its_own(api_client, staff_user):
    # given: one proxy in front (TRUSTED_PROXY_COUNT=1), every request from its address
    proxied = {"TRUSTED_PROXY_COUNT": 1}
    url = reverse("controller-auth")

    def attempt(client_ip, username, password):
        return api_client.post(
            url,
            {"username": username, "password": password},
            format="json",
            REMOTE_ADDR="10.0.0.2",
            # what the client wrote, then what the proxy appended
            HTTP_X_FORWARDED_FOR=f"6.6.6.6, {client_ip}",
        )

    with override_settings(**proxied):
        # when: someone fails with made-up usernames up to the address limit
        for n in range(settings.AXES_IP_FAILURE_LIMIT):
            attempt("203.0.113.66", f"nobody{n}", "x")

        # then: that client is locked out, a staff member elsewhere is not (and the address a
        # client writes itself counts for nothing)
        assert attempt("203.0.113.66", "staff", "staff-pass-1234").status_code == 429
        assert attempt("198.51.100.9", "staff", "staff-pass-1234").status_code == 200
