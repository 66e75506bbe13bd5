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


@pytest.fixture(autouse=True)
def _no_dns_for_webhooks(monkeypatch):
    """Webhook URLs resolve through `core.outbound_http._getaddrinfo`: in the tests no name
    resolves (an address literal does), so no test can reach a DNS server or a tenant's host
    by accident. The webhook tests install their own table (integrations/tests/conftest.py)."""
    import ipaddress
    import socket

    from core import outbound_http

    def refuse(host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "no DNS in the tests") from None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (host, port))]

    monkeypatch.setattr(outbound_http, "_getaddrinfo", refuse)


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
