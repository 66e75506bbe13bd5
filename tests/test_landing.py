"""The landing page at `/`: what chatai is and the ways in; nobody's data."""

import pytest
from django.test import Client

from tenants.admin_base import inbox_url


@pytest.mark.django_db
def test_visitors_get_the_sign_in_and_the_docs():
    response = Client().get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "WhatsApp" in html
    for href in ('href="/admin/"', 'href="/api/docs/"', 'href="/healthz"'):
        assert href in html
    assert "Go to the inbox" not in html and "Staff sign in" in html
    assert "style=" not in html and "<script" not in html and "<style" not in html
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "agent", "viewer"])
def test_members_get_a_button_to_the_inbox_and_no_personal_data(role, tenant, member):
    user = member(tenant, role, username="marta", email="marta@example.com")
    client = Client()
    client.force_login(user)
    html = client.get("/").content.decode()
    assert "Go to the inbox" in html and f'href="{inbox_url()}"' in html.replace("&amp;", "&")
    assert "marta" not in html and tenant.name not in html


@pytest.mark.django_db
def test_a_signed_in_user_with_no_tenant_is_not_offered_the_inbox(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user(username="nobody"))
    assert "Go to the inbox" not in client.get("/").content.decode()


@pytest.mark.django_db
def test_only_get_and_head():
    client = Client()
    assert client.head("/").status_code == 200
    assert client.post("/").status_code == 405


@pytest.mark.django_db
def test_the_other_root_routes_still_answer():
    client = Client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/webhooks/whatsapp").status_code != 404
    assert client.get("/no-such-page").status_code == 404
