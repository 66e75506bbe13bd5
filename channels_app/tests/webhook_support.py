"""Helpers for the webhook tests: stored provider payloads, signed the way providers sign."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.test import TestCase
from twilio.request_validator import RequestValidator

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOK = "/api/webhooks/whatsapp"
TWILIO_NUMBER = "+15550000001"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def twilio_params(name: str, **overrides: str) -> dict[str, str]:
    params = load(f"twilio/{name}.json")
    params.update(overrides)
    return params


def twilio_signature(token: str, path: str, params: dict[str, str]) -> str:
    return RequestValidator(token).compute_signature(f"{settings.PUBLIC_BASE_URL}{path}", params)


def post_twilio(
    client: Any,
    params: dict[str, str],
    *,
    token: str,
    path: str = WEBHOOK,
    signature: str | None = None,
) -> Any:
    headers = {}
    sig = twilio_signature(token, path, params) if signature is None else signature
    if sig:
        headers["HTTP_X_TWILIO_SIGNATURE"] = sig
    with run_on_commit():
        return client.post(path, data=params, **headers)


def cloud_payload(name: str, phone_number_id: str) -> dict[str, Any]:
    payload = copy.deepcopy(load(f"cloud_api/{name}.json"))
    for entry in payload["entry"]:
        for change in entry["changes"]:
            change["value"]["metadata"]["phone_number_id"] = phone_number_id
    return payload


def hub_signature(body: bytes, secret: str | None = None) -> str:
    key = (secret or settings.META_APP_SECRET).encode()
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def post_cloud(
    client: Any, payload: Any, *, signature: str | None = None, raw: bytes | None = None
) -> Any:
    body = raw if raw is not None else json.dumps(payload).encode()
    sig = hub_signature(body) if signature is None else signature
    headers = {"HTTP_X_HUB_SIGNATURE_256": sig} if sig else {}
    with run_on_commit():
        return client.post(WEBHOOK, data=body, content_type="application/json", **headers)


def run_on_commit() -> Any:
    """Run on_commit callbacks (the tasks) as they are registered, even inside the test's
    transaction; outside one (transactional tests) Django runs them itself."""
    if connection.in_atomic_block:
        return TestCase.captureOnCommitCallbacks(execute=True)
    return contextlib.nullcontext()
