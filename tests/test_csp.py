"""The Content-Security-Policy header, without a browser: on every kind of response, and the
only inline styles it lets through are the ones DRF's templates really use.

What the policy does to the pages in a browser is tested in tests/browser/test_csp.py.
"""

import base64
import hashlib
import re
from pathlib import Path

import pytest
import rest_framework
from django.conf import settings


def policy_of(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/admin/login/"),
        ("get", "/api/"),
        ("get", "/api/tenants/"),  # 401/403 JSON envelope
        ("get", "/api/no-such-thing"),  # the JSON 404
        ("get", "/api/docs/"),
        ("get", "/api/schema/"),
        ("post", "/api/webhooks/whatsapp"),  # unsigned: refused
        ("get", "/healthz"),
        ("get", "/metrics"),
    ],
)
def test_every_response_carries_the_policy(client, db, method, path):
    response = getattr(client, method)(path)

    policy = policy_of(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    every_value = {value for values in policy.values() for value in values}
    assert not every_value & {"'unsafe-inline'", "'unsafe-eval'"}


def test_the_allowed_style_attributes_are_exactly_those_of_drf_templates():
    """DRF's templates set a few fixed style attributes; the policy allows those values by
    hash. An upgrade of DRF that adds or changes one fails here (and in the browser tests)."""
    templates = Path(rest_framework.__file__).parent / "templates" / "rest_framework"
    # login_base.html (no DRF login is wired) and admin.html (AdminRenderer is not used)
    # are never served.
    unused = {"login_base.html", "admin.html"}
    used = set()
    for template in templates.rglob("*.html"):
        if template.name not in unused:
            used |= set(re.findall(r'style="([^"]*)"', template.read_text()))

    allowed = set(settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["style-src-attr"])

    def hashed(value: str) -> str:
        return f"'sha256-{base64.b64encode(hashlib.sha256(value.encode()).digest()).decode()}'"

    assert {hashed(value) for value in used} | {"'unsafe-hashes'"} == allowed
