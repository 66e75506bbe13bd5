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
