"""Root fixtures: tenants, channels, API clients. Factories live in tests/factories.py."""

import pytest
from django.core.cache import caches
from django.db import connection

from channels_app.selectors import channels_memo_clear
from tests import factories


@pytest.fixture(autouse=True)
def _clear_caches():
    """Lockout counters, rate limits and memoised channels must not leak from one test into
    the next."""
    for alias in ("default", "local"):
        try:
            caches[alias].clear()
        except Exception:  # noqa: BLE001 - an alias that is not configured
            pass
    channels_memo_clear()
    yield


@pytest.fixture
def tenant(db):
    return factories.TenantFactory()


@pytest.fixture
def other_tenant(db):
    return factories.TenantFactory()


@pytest.fixture
def twilio_channel(tenant):
    return factories.TwilioChannelFactory(tenant=tenant)


@pytest.fixture
def cloud_channel(tenant):
    return factories.CloudChannelFactory(tenant=tenant)


@pytest.fixture
def staff_user(db, django_user_model):
    return django_user_model.objects.create_user(
        username="staff", password="staff-pass-1234", is_staff=True, is_superuser=True
    )


@pytest.fixture
def member(db):
    """`member(tenant, "agent")`: a user holding that role in the tenant (password
    `pw-member-123456`)."""

    def make(tenant, role, **user_fields):
        user = factories.UserFactory(**user_fields)
        factories.MembershipFactory(tenant=tenant, user=user, role=role)
        return user

    return make


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def staff_client(api_client, staff_user):
    api_client.force_login(staff_user)
    return api_client


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    if connection.vendor != "postgresql":
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip_pg)
