"""Helpers shared by the API tests (clients authenticated with a tenant key)."""

from rest_framework.test import APIClient

from tenants.api_keys import api_key_create


def key_client(tenant, name: str = "test") -> APIClient:
    """An API client sending a fresh API key of `tenant`."""
    _, raw_key = api_key_create(tenant=tenant, name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def error_of(response, extra: tuple[str, ...] = ()) -> dict:
    """The error envelope of an answer; `extra`: the keys an error adds (`templates`)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details", *extra}, body
    return body["error"]
