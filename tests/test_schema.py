"""The OpenAPI schema: valid, served offline, and honoured by the API under generated input.

The schemathesis run is bounded (a few examples per operation) so it stays part of the normal
`pytest` run; it checks for server errors and for answers that break the schema (status codes,
content types, bodies) as a staff session sees them, with path ids of real objects.
"""

import json
import os
import re
from pathlib import Path

import pytest
import responses
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from chatai.wsgi import application
from flows.models import Flow
from tenants.api_keys import api_key_create
from tenants.models import Tenant, TenantAPIKey
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


# Ids of the real objects every generated request targets (pinned, so the checks can expect
# 405 for an undeclared method, and the schemathesis cases reach past the 404s).
IDS = {
    "tenant": "0f3e2b1a-5c4d-4e6f-8a9b-0c1d2e3f4a5b",
    "channel": "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d",
    "thread": "2b3c4d5e-6f7a-4b9c-8d1e-2f3a4b5c6d7e",
    "contact": "3c4d5e6f-7a8b-4c0d-9e2f-3a4b5c6d7e8f",
    "flow": "4d5e6f7a-8b9c-4d1e-8f3a-4b5c6d7e8f9a",
    "key": "5e6f7a8b-9c0d-4e2f-9a4b-5c6d7e8f9a0b",
    "webhook": "6f7a8b9c-0d1e-4f3a-8b5c-6d7e8f9a0b1c",
    "delivery": "7a8b9c0d-1e2f-4a4b-9c6d-7e8f9a0b1c2d",
}

# CI keeps the run bounded; raise these locally to hunt for mismatches, e.g.
# `CHATAI_SCHEMA_EXAMPLES=200 pytest tests/test_schema.py`.
MAX_EXAMPLES = int(os.environ.get("CHATAI_SCHEMA_EXAMPLES", "4"))
PHASES = os.environ.get("CHATAI_SCHEMA_PHASES", "coverage,fuzzing").split(",")

CHANNEL_FIXTURES = Path(__file__).resolve().parent.parent / "channels_app/tests/fixtures"

# Loaded at collection: generating the schema touches no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
schema.config.phases.update(phases=PHASES)
# NUL characters are refused everywhere (DRF's CharField); the schema cannot say it per field.
schema.config.generation.update(modes=["positive", "negative"], allow_x00=False)
schema.config.update(parameters={f"path.{name}": value for name, value in IDS.items()})

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
]

# Schema-valid bodies these operations refuse by rules a schema cannot state, so they are not
# held to `positive_data_acceptance` (every other check still applies):
CROSS_FIELD_RULES = {
    # Slugs are unique (a generated slug may be taken by an earlier example).
    "POST /api/tenants/",
    # `identifier` must be `whatsapp:` + `phone_number`; identifiers are unique among channels.
    "POST /api/tenants/{tenant}/channels/",
    "PATCH /api/tenants/{tenant}/channels/{channel}/",
    # `channel` must be one of the tenant's channels; `definition` must be a valid flow.
    "POST /api/tenants/{tenant}/flows/",
    "POST /api/tenants/{tenant}/flows/validate/",
    # A webhook `url` must be https on a host that resolves to public addresses (no name
    # resolves in the tests: the root conftest's resolver refuses them all).
    "POST /api/tenants/{tenant}/webhooks/",
    "PATCH /api/tenants/{tenant}/webhooks/{webhook}/",
    # Either `text` or `template`, and a template must be one of the channel's approved ones.
    "POST /api/tenants/{tenant}/threads/{thread}/messages/",
}


def _checks(case) -> list:
    if case.operation.label in CROSS_FIELD_RULES:
        return [check for check in CHECKS if check is not positive_data_acceptance]
    return CHECKS


@pytest.fixture
def keep_test_connection(real_ids):
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
def real_ids(db):
    """Real objects at the pinned ids, and the credentials of both kinds of caller."""
    tenant = factories.TenantFactory(id=IDS["tenant"])
    channel = factories.TwilioChannelFactory(tenant=tenant, id=IDS["channel"])
    contact = factories.ContactFactory(tenant=tenant, id=IDS["contact"])
    thread = factories.ThreadFactory(channel=channel, contact=contact, id=IDS["thread"])
    factories.MessageFactory(thread=thread)
    Flow.objects.create(
        id=IDS["flow"],
        tenant=tenant,
        channel=channel,
        flow_id="f",
        version=1,
        name="F",
        definition={},
    )
    factories.webhook_with_delivery(tenant, delivery_id=IDS["delivery"], id=IDS["webhook"])
    api_key, _ = api_key_create(tenant=tenant, name="fuzz")
    TenantAPIKey.objects.filter(pk=api_key.pk).update(id=IDS["key"])
    return IDS


def _staff_credentials(django_user_model) -> dict:
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
def content_api():
    """Twilio's Content API stand-in (the pinned channel is a Twilio one): a template sync
    gets the stored list instead of trying the network."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as stand_in:
        stand_in.get(
            "https://content.twilio.test/v1/ContentAndApprovals",
            json=json.loads((CHANNEL_FIXTURES / "twilio/content_and_approvals.json").read_text()),
        )
        yield stand_in


@pytest.fixture
def staff_session(real_ids, django_user_model):
    return _staff_credentials(django_user_model)


@pytest.fixture
def key_credentials(real_ids):
    _, raw_key = api_key_create(tenant=Tenant.objects.get(pk=IDS["tenant"]), name="fuzz-caller")
    return {"cookies": {}, "headers": {"Authorization": f"Api-Key {raw_key}"}}


HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@HYPOTHESIS
def test_api_honours_its_schema_for_staff(case, staff_session, content_api, keep_test_connection):
    case.call_and_validate(
        headers=staff_session["headers"], cookies=staff_session["cookies"], checks=_checks(case)
    )


@schema.parametrize()
@HYPOTHESIS
def test_api_honours_its_schema_for_an_api_key(
    case, key_credentials, content_api, keep_test_connection
):
    case.call_and_validate(headers=key_credentials["headers"], checks=_checks(case))
