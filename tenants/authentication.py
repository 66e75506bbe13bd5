"""`Authorization: Api-Key <key>`: a request made for one tenant, with a tenant API key."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from tenants.api_keys import api_key_authenticate
from tenants.models import TenantAPIKey

KEYWORD = "Api-Key"


class APIKeyUser:
    """The `request.user` of a key-authenticated request: authenticated, never staff.

    Views find the key (and its tenant) in `request.auth`.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None
    username = ""

    def __init__(self, api_key: TenantAPIKey) -> None:
        self.api_key = api_key
        self.tenant_id = api_key.tenant_id

    def __str__(self) -> str:
        return f"API key {self.api_key.prefix}"

    def get_username(self) -> str:
        return ""

    def has_perm(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def has_perms(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def has_module_perms(self, *args: Any, **kwargs: Any) -> bool:
        return False


class TenantAPIKeyAuthentication(BaseAuthentication):
    """Authenticates `Authorization: Api-Key <key>`; other schemes are left to the next class.

    A malformed, unknown or revoked key, or the key of a deleted or inactive tenant, is a 401
    whose message never repeats the key.
    """

    def authenticate(self, request: Request) -> tuple[APIKeyUser, TenantAPIKey] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: use 'Api-Key <key>'."
            )
        try:
            raw_key = parts[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from None
        api_key = api_key_authenticate(raw_key=raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return APIKeyUser(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'


class TenantAPIKeyScheme(OpenApiAuthenticationExtension):
    target_class = TenantAPIKeyAuthentication
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A tenant API key: `Api-Key chk_xxxxxxxx.<secret>`.",
        }
