"""Wrong admin passwords lock the account out with 429, on Redis or local memory."""

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse

DEAD_REDIS_CACHES = {
    "default": {
        "BACKEND": "core.cache.FallbackCache",
        "LOCATION": "redis://127.0.0.1:6399/0",
        "OPTIONS": {"PRIMARY": "redis", "FALLBACK": "local"},
    },
    "redis": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:6399/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    },
    "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}


def fail_logins(client, username: str, times: int) -> list[int]:
    url = reverse("admin:login")
    return [
        client.post(url, {"username": username, "password": "wrong-password"}).status_code
        for _ in range(times)
    ]


@pytest.mark.django_db
def test_wrong_passwords_lock_the_admin_login_with_429(client, staff_user):
    limit = settings.AXES_FAILURE_LIMIT
    statuses = fail_logins(client, "staff", limit)
    assert statuses[:-1] == [200] * (limit - 1)
    assert statuses[-1] == 429
    # Even the right password is refused while locked out.
    response = client.post(
        reverse("admin:login"), {"username": "staff", "password": "staff-pass-1234"}
    )
    assert response.status_code == 429


@pytest.mark.django_db
def test_a_successful_login_before_the_limit_resets_the_count(client, staff_user):
    fail_logins(client, "staff", settings.AXES_FAILURE_LIMIT - 1)
    ok = client.post(reverse("admin:login"), {"username": "staff", "password": "staff-pass-1234"})
    assert ok.status_code == 302
    client.logout()
    assert fail_logins(client, "staff", 1) == [200]


@pytest.mark.django_db
@override_settings(CACHES=DEAD_REDIS_CACHES)
def test_lockout_still_works_when_redis_is_down(client, staff_user):
    statuses = fail_logins(client, "staff", settings.AXES_FAILURE_LIMIT)
    assert statuses[-1] == 429


# --- Two limits: a username at an address, and an address ----------------------------------

ADDRESS_A = "203.0.113.10"
ADDRESS_B = "198.51.100.20"
API_LOGIN = "/api/controller/auth"


def admin_login(client, username: str, password: str, address: str) -> int:
    response = client.post(
        reverse("admin:login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )
    return response.status_code


def api_login(api_client, username: str, password: str, address: str):
    return api_client.post(
        API_LOGIN, {"username": username, "password": password}, format="json", REMOTE_ADDR=address
    )


@pytest.mark.django_db
def test_failures_lock_a_username_at_its_address_only(client, api_client, staff_user):
    # given: someone at address A fails the staff password up to the limit
    for _ in range(settings.AXES_FAILURE_LIMIT):
        admin_login(client, "staff", "wrong-password", ADDRESS_A)

    # then: the staff account is locked at A, through the admin and the API alike
    assert admin_login(client, "staff", "staff-pass-1234", ADDRESS_A) == 429
    locked = api_login(api_client, "staff", "staff-pass-1234", ADDRESS_A)
    assert locked.status_code == 429
    assert 0 < int(locked["Retry-After"]) <= settings.AXES_COOLOFF_TIME * 3600

    # and: the real staff member at address B still logs in, through both
    assert admin_login(client, "staff", "staff-pass-1234", ADDRESS_B) == 302
    client.logout()
    assert api_login(api_client, "staff", "staff-pass-1234", ADDRESS_B).status_code == 200


@pytest.mark.django_db
def test_api_failures_do_not_lock_the_admin_login_elsewhere(client, api_client, staff_user):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        assert api_login(api_client, "staff", "wrong", ADDRESS_A).status_code in (401, 429)
    assert api_login(api_client, "staff", "staff-pass-1234", ADDRESS_A).status_code == 429
    assert admin_login(client, "staff", "staff-pass-1234", ADDRESS_B) == 302


@pytest.mark.django_db
def test_one_address_trying_many_usernames_is_locked_at_the_address_limit(
    client, api_client, staff_user
):
    limit = settings.AXES_IP_FAILURE_LIMIT
    assert limit > settings.AXES_FAILURE_LIMIT

    # given: address A fails once each for one username fewer than the address limit
    statuses = [
        admin_login(client, f"guess{n}", "wrong-password", ADDRESS_A) for n in range(limit - 1)
    ]
    assert statuses == [200] * (limit - 1)

    # when: it fails once more, with yet another username, through the API
    assert api_login(api_client, "another-guess", "wrong", ADDRESS_A).status_code == 429

    # then: A is locked out for every username, the right password included
    assert admin_login(client, "staff", "staff-pass-1234", ADDRESS_A) == 429
    locked = api_login(api_client, "staff", "staff-pass-1234", ADDRESS_A)
    assert locked.status_code == 429
    assert 0 < int(locked["Retry-After"]) <= settings.AXES_COOLOFF_TIME * 3600
    # and: another address is not
    assert api_login(api_client, "staff", "staff-pass-1234", ADDRESS_B).status_code == 200


@pytest.mark.django_db
def test_a_success_clears_the_username_count_but_not_the_address_count(client, staff_user):
    # given: failures for the staff account and for other usernames at A, under both limits
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        admin_login(client, "staff", "wrong-password", ADDRESS_A)
    # (two short of the address limit: the two failures below reach it)
    others = settings.AXES_IP_FAILURE_LIMIT - settings.AXES_FAILURE_LIMIT - 1
    for n in range(others):
        admin_login(client, f"guess{n}", "wrong-password", ADDRESS_A)

    # when: the staff member logs in at A
    assert admin_login(client, "staff", "staff-pass-1234", ADDRESS_A) == 302
    client.logout()

    # then: their own count starts again ...
    assert admin_login(client, "staff", "wrong-password", ADDRESS_A) == 200
    # ... while the address keeps every failure it made: the next one reaches its limit
    assert admin_login(client, "guess-last", "wrong-password", ADDRESS_A) == 429


@pytest.mark.django_db
def test_a_lockout_logs_the_counter_without_username_or_address(client, staff_user, caplog):
    caplog.set_level("INFO")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        admin_login(client, "staff", "wrong-password", ADDRESS_A)
    locked = [r for r in caplog.records if r.getMessage() == "login locked out"]
    assert [(r.counter, r.failures) for r in locked] == [
        ("username_at_address", settings.AXES_FAILURE_LIMIT)
    ]
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__}"
        assert ADDRESS_A not in text
        assert "'staff'" not in text and '"staff"' not in text


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (set REDIS_URL)")
@pytest.mark.django_db
def test_retry_after_is_the_ttl_of_the_counter_that_locks(rf, staff_user):
    # given: the lockout on a plain django-redis cache (which can tell a key's TTL)
    redis_only = {
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": settings.REDIS_URL}
    }
    with override_settings(CACHES=redis_only):
        from django.core.cache import cache

        from core.lockout import login_counters
        from tenants.api.lockout import login_retry_after

        cache.clear()
        request = rf.post(API_LOGIN, REMOTE_ADDR=ADDRESS_A)
        credentials = {"username": "staff"}
        counters = {c.kind: c for c in login_counters(request, credentials)}
        # the username at A is at its limit and ends in 100 s; the address, under its
        # limit, would keep its count for longer
        cache.set(counters["username_at_address"].key, settings.AXES_FAILURE_LIMIT, 100)
        cache.set(counters["address"].key, settings.AXES_FAILURE_LIMIT, 800)

        # then: Retry-After is the locking counter's TTL, not the longer one
        assert 90 <= login_retry_after(request, "staff") <= 100

        # and: once the address is at its limit too, its TTL is the one that counts
        cache.set(counters["address"].key, settings.AXES_IP_FAILURE_LIMIT, 800)
        assert 790 <= login_retry_after(request, "staff") <= 800
        cache.clear()
