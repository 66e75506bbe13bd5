"""Writes for channels."""

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction

from channels_app.models import ChannelInstance, ChannelType, Provider
from core.storable import unstorable
from tenants.models import Tenant

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SECRET_KEYS = {
    Provider.TWILIO: {"account_sid", "auth_token"},
    Provider.CLOUD_API: {"access_token", "app_secret"},
}
SETTINGS_KEYS = {
    Provider.TWILIO: {"api_base_url", "messaging_service_sid"},
    Provider.CLOUD_API: {"phone_number_id", "api_base_url", "waba_id"},
}


# Settings only platform staff may set or change: where the server sends requests (with the
# channel's credentials) must not be chosen by a tenant's owner or API key.
PLATFORM_ONLY_SETTINGS = ("api_base_url",)


def channel_platform_settings_changed(
    *, settings: dict[str, Any] | None, current: dict[str, Any] | None
) -> list[str]:
    """The platform-only settings that `settings` sets or changes (keeping or removing one
    is allowed to anyone who may edit the channel)."""
    if not settings:
        return []
    current = current or {}
    return [
        key
        for key in PLATFORM_ONLY_SETTINGS
        if settings.get(key) and settings.get(key) != current.get(key)
    ]


def _unstorable(value: dict[str, Any], *, echo: bool = True) -> str:
    """The first string of `value` the database cannot store, as an error message ('' when
    all can be). With `echo` off the message names no key (secrets' keys are harmless, but
    nothing of a secrets object is repeated back)."""
    for loc, problem in unstorable(value):
        where = ".".join(str(part) for part in loc)
        return f"{where}: {problem}." if echo and where else f"A value {problem}."
    return ""


def _http_url(value: object) -> bool:
    try:
        URLValidator(schemes=["http", "https"])(str(value))
    except ValidationError:
        return False
    return isinstance(value, str) and len(value) <= 500


def channel_validate(
    *,
    provider: str,
    identifier: str,
    phone_number: str,
    settings: dict[str, Any],
    secrets: dict[str, Any],
    exclude_pk: object = None,
) -> None:
    """Raise ValidationError (field -> message, never a secret value) for a bad channel."""
    errors: dict[str, str] = {}
    if provider not in Provider.values:
        errors["provider"] = f"Must be one of: {', '.join(Provider.values)}."
    if not E164.match(phone_number or ""):
        errors["phone_number"] = "Must be an E.164 number such as +14155238886."
    if not identifier:
        errors["identifier"] = "This field is required."
    elif phone_number and identifier != f"whatsapp:{phone_number}":
        errors["identifier"] = "Must be 'whatsapp:' followed by the phone number."
    if not isinstance(settings, dict):
        errors["settings"] = "Must be an object."
    elif bad := _unstorable(settings):
        errors["settings"] = bad
    elif provider in SETTINGS_KEYS:
        unknown = sorted(set(settings) - SETTINGS_KEYS[Provider(provider)])
        base_url = settings.get("api_base_url")
        if unknown:
            errors["settings"] = f"Unknown keys: {', '.join(unknown)}."
        elif base_url is not None and not _http_url(base_url):
            errors["settings"] = "settings.api_base_url must be an http(s) URL."
        elif provider == Provider.CLOUD_API and not str(settings.get("phone_number_id", "")):
            errors["settings"] = "settings.phone_number_id is required for the Cloud API."
        elif provider == Provider.CLOUD_API and len(str(settings["phone_number_id"])) > 64:
            errors["settings"] = "settings.phone_number_id is longer than 64 characters."
        elif provider == Provider.CLOUD_API:
            taken = ChannelInstance.objects.filter(
                provider=Provider.CLOUD_API, phone_number_id=str(settings["phone_number_id"])
            ).exclude(pk=exclude_pk)
            if taken.exists():
                errors["settings"] = "Another channel already uses this phone_number_id."
    if not isinstance(secrets, dict):
        errors["secrets"] = "Must be an object."
    elif bad := _unstorable(secrets, echo=False):
        errors["secrets"] = bad
    elif provider in SECRET_KEYS:
        unknown = sorted(set(secrets) - SECRET_KEYS[Provider(provider)])
        if unknown:
            errors["secrets"] = f"Unknown keys: {', '.join(unknown)}."
        elif not all(isinstance(value, str) for value in secrets.values()):
            errors["secrets"] = "Secret values must be strings."
    if (
        identifier
        and ChannelInstance.objects.filter(identifier=identifier).exclude(pk=exclude_pk).exists()
    ):
        errors["identifier"] = "A channel with this identifier already exists."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def channel_create(
    *,
    tenant: Tenant,
    provider: str,
    identifier: str = "",
    phone_number: str,
    settings: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    channel_type: str = ChannelType.WHATSAPP,
    is_active: bool = True,
) -> ChannelInstance:
    """Create a channel after validating provider settings and secrets.

    `identifier` defaults to `whatsapp:<phone_number>`. Raises ValidationError (with field
    names, never secret values) on bad input or when the identifier is taken.
    """
    settings = {} if settings is None else settings
    secrets = {} if secrets is None else secrets
    identifier = identifier or f"whatsapp:{phone_number}"
    if channel_type not in ChannelType.values:
        raise ValidationError({"channel_type": "Must be 'whatsapp'."})
    if channel_type != ChannelType.WHATSAPP:
        raise ValidationError({"channel_type": "Only WhatsApp channels are supported for now."})
    channel_validate(
        provider=provider,
        identifier=identifier,
        phone_number=phone_number,
        settings=settings,
        secrets=secrets,
    )
    try:
        with transaction.atomic():
            return ChannelInstance.objects.create(
                tenant=tenant,
                channel_type=channel_type,
                provider=provider,
                identifier=identifier,
                phone_number=phone_number,
                settings=settings,
                secrets={k: v for k, v in secrets.items() if v},
                is_active=is_active,
            )
    except IntegrityError as exc:
        raise ValidationError(
            {"identifier": "A channel with this identifier already exists."}
        ) from exc


@transaction.atomic
def channel_update(*, channel: ChannelInstance, data: dict[str, Any]) -> ChannelInstance:
    """Update a channel. `secrets` given are merged in (an empty value removes that secret)."""
    secrets = dict(channel.secrets or {})
    if "secrets" in data and data["secrets"] is not None:
        if not isinstance(data["secrets"], dict):
            raise ValidationError({"secrets": "Must be an object."})
        for key, value in data["secrets"].items():
            if value:
                secrets[key] = value
            else:
                secrets.pop(key, None)
    provider = data.get("provider", channel.provider)
    phone_number = data.get("phone_number", channel.phone_number)
    identifier = data.get("identifier") or (
        f"whatsapp:{phone_number}" if "phone_number" in data else channel.identifier
    )
    settings = data.get("settings", channel.settings)
    channel_validate(
        provider=provider,
        identifier=identifier,
        phone_number=phone_number,
        settings=settings,
        secrets=secrets,
        exclude_pk=channel.pk,
    )
    channel.provider = provider
    channel.phone_number = phone_number
    channel.identifier = identifier
    channel.settings = settings
    channel.secrets = secrets
    if "is_active" in data:
        channel.is_active = bool(data["is_active"])
    channel.save()
    return channel
