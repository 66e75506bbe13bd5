"""The OpenAPI schema: valid, served offline, and honoured by the API under generated input.

The schemathesis run is bounded (a few examples per operation) so it stays part of the normal
`pytest` run; it checks for server errors and for answers that break the schema (status codes,
content types, bodies) as a staff session sees them, with path ids of real objects.
"""

import re

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chatai.wsgi import application
from flows.models import Flow
from tests import factories


def test_the_schema_validates_without_warnings(tmp_path):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )


def test_docs_are_served_without_internet(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert b"swagger-ui" in page.content
    assert b"cdn.jsdelivr" not in page.content and b"unpkg.com" not in page.content
    # Swagger UI's start-up script is a file of the same view (the CSP allows no inline script)
    scripts = re.findall(rb"<script([^>]*)>", page.content)
    assert scripts and all(b" src=" in attributes for attributes in scripts)
    start_up = client.get("/api/docs/?script=")
    assert start_up.status_code == 200
    assert start_up["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle(" in start_up.content and b"/api/schema/" in start_up.content
    assert b"cdn.jsdelivr" not in start_up.content and b"unpkg.com" not in start_up.content
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    spec = schema.json()
    assert spec["components"]["securitySchemes"]["ApiKeyAuth"]["in"] == "header"
    assert "/api/tenants/{tenant}/threads/{thread}/messages/" in spec["paths"]


# Loaded at collection: generating the schema touches no database. Only the generated
# (fuzzing) phase runs, bounded by max_examples below.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
schema.config.phases.update(phases=["fuzzing"])


@pytest.fixture
def keep_test_connection(staff_session, real_ids):
    """Calling the WSGI handler directly fires request_started/finished, whose
    close_old_connections would close the test transaction's connection (on PostgreSQL);
    Django's own test client disconnects it the same way, but reconnects it after each of its
    requests, so this runs after the fixtures that use it."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def staff_session(db, django_user_model):
    """Cookies and the CSRF header of a real staff login (as a browser or script has them)."""
    from django.test import Client

    django_user_model.objects.create_user(
        username="fuzz-staff", password="fuzz-pass-1234", is_staff=True, is_superuser=True
    )
    browser = Client()
    response = browser.post(
        "/api/controller/auth",
        {"username": "fuzz-staff", "password": "fuzz-pass-1234"},
        content_type="application/json",
    )
    assert response.status_code == 200
    return {
        "cookies": {name: morsel.value for name, morsel in browser.cookies.items()},
        "headers": {"X-CSRFToken": response.json()["csrf_token"]},
    }


@pytest.fixture
def real_ids(db):
    """Ids of real objects, so generated requests reach past the 404s."""
    tenant = factories.TenantFactory()
    channel = factories.TwilioChannelFactory(tenant=tenant)
    thread = factories.ThreadFactory(channel=channel)
    factories.MessageFactory(thread=thread)
    flow = Flow.objects.create(
        tenant=tenant, channel=channel, flow_id="f", version=1, name="F", definition={}
    )
    from tenants.api_keys import api_key_create

    api_key, _ = api_key_create(tenant=tenant, name="fuzz")
    return {
        "tenant": str(tenant.pk),
        "channel": str(channel.pk),
        "thread": str(thread.pk),
        "contact": str(thread.contact_id),
        "flow": str(flow.pk),
        "key": str(api_key.pk),
    }


@schema.parametrize()
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_honours_its_schema(case, keep_test_connection, staff_session, real_ids):
    if case.path_parameters:
        for name in case.path_parameters:
            if name in real_ids:
                case.path_parameters[name] = real_ids[name]
    case.call_and_validate(
        headers=staff_session["headers"],
        cookies=staff_session["cookies"],
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
