"""Writes for channels."""

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from channels_app.models import ChannelInstance, ChannelType
from channels_app.providers import (
    AmbiguousSendError,
    OutboundPayload,
    Provider,
    ProviderError,
    TransientSendError,
    get_provider,
    providers,
)
from channels_app.providers.base import scrub
from core.storable import unstorable
from tenants.models import Tenant

logger = logging.getLogger(__name__)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


# Settings only platform staff may set or change: where the server sends requests (with the
# channel's credentials) must not be chosen by a tenant's owner or API key. Every provider's
# `ProviderField(platform_only=True)` is one; `api_base_url` is the built-in providers'.
PLATFORM_ONLY_SETTINGS = ("api_base_url",)


def _platform_only_settings() -> tuple[str, ...]:
    keys = dict.fromkeys(PLATFORM_ONLY_SETTINGS)
    for provider in providers().values():
        keys.update(dict.fromkeys(f.key for f in provider.settings_fields if f.platform_only))
    return tuple(keys)


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
        for key in _platform_only_settings()
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


def channel_validate(
    *,
    provider: str,
    identifier: str,
    phone_number: str,
    settings: dict[str, Any],
    secrets: dict[str, Any],
    exclude_pk: object = None,
    current_provider: str = "",
) -> None:
    """Raise ValidationError (field -> messages, never a secret value) for a bad channel.

    The provider must be installed (and available here); its own rules for its settings and
    secrets are `Provider.validate`, whose errors are reported under `settings` or `secrets`
    (settings and secrets are checked independently, every error reported). A channel whose
    provider is no longer installed (`current_provider`, the code it stores now) may still be
    edited (deactivated, renamed): its settings and secrets cannot be checked then.
    """
    errors: dict[str, list[str]] = {}
    installed = providers().get(provider)
    orphaned = installed is None and bool(provider) and provider == current_provider
    if installed is None and not orphaned:
        errors["provider"] = [f"Must be one of: {', '.join(providers())}."]
    elif installed is not None and not installed.available():
        errors["provider"] = [installed.unavailable_reason()]
    for key, message in _identity_errors(
        provider=installed, identifier=identifier, phone_number=phone_number
    ).items():
        errors[key] = [message]
    usable_settings: dict[str, Any] | None = None
    usable_secrets: dict[str, Any] | None = None
    if not isinstance(settings, dict):
        errors["settings"] = ["Must be an object."]
    elif bad := _unstorable(settings):
        errors["settings"] = [bad]
    else:
        usable_settings = settings
    if not isinstance(secrets, dict):
        errors["secrets"] = ["Must be an object."]
    elif bad := _unstorable(secrets, echo=False):
        errors["secrets"] = [bad]
    else:
        usable_secrets = secrets
    if installed is not None:
        found = installed.validate(
            settings=usable_settings, secrets=usable_secrets, exclude_pk=exclude_pk
        )
        for where, messages in found.items():
            errors.setdefault(where, []).extend(messages)
    if (
        identifier
        and ChannelInstance.objects.filter(identifier=identifier).exclude(pk=exclude_pk).exists()
    ):
        errors["identifier"] = ["A channel with this identifier already exists."]
    if errors:
        raise ValidationError(errors)


def _identity_errors(
    *, provider: Provider | None, identifier: str, phone_number: str
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not E164.match(phone_number or ""):
        errors["phone_number"] = "Must be an E.164 number such as +14155238886."
    if not identifier:
        errors["identifier"] = "This field is required."
    elif phone_number and identifier != f"whatsapp:{phone_number}":
        errors["identifier"] = "Must be 'whatsapp:' followed by the phone number."
    return errors


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
        current_provider=channel.provider,
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


# --- "Send a test message" --------------------------------------------------------------------

TEST_MESSAGE_TEXT = (
    "chatai test message: this WhatsApp channel is connected and can send. No reply is needed."
)
TEST_SENDS_PER_WINDOW = 5
TEST_SEND_WINDOW_SECONDS = 10 * 60

# What a provider's error code usually means, for the person setting the channel up.
TEST_SEND_HINTS: dict[tuple[str, str], str] = {
    ("twilio", "20003"): "Twilio refused the credentials: check the account SID and auth token.",
    ("twilio", "20404"): "Twilio does not know this account or number: check the account SID.",
    ("twilio", "21211"): "The destination is not a valid phone number.",
    ("twilio", "21606"): "This channel's number cannot send from this Twilio account.",
    ("twilio", "21608"): "A trial account can only send to verified numbers.",
    ("twilio", "63007"): (
        "Twilio has no WhatsApp sender for this channel's number: check the phone number, or "
        "that the number is approved for WhatsApp in Twilio's console."
    ),
    ("twilio", "63015"): (
        "Twilio sandbox: the destination must first join the sandbox (send the join code to it)."
    ),
    ("twilio", "63016"): (
        "WhatsApp allows a free-form message only within 24 hours of the destination's last "
        "message to this number: write to the channel from that phone first."
    ),
    ("cloud_api", "190"): (
        "Meta refused the access token (expired or revoked): set a new one, ideally a system "
        "user's permanent token."
    ),
    ("cloud_api", "100"): (
        "Meta refused a parameter: check the phone number ID, and that the destination is a "
        "valid WhatsApp number."
    ),
    ("cloud_api", "10"): "The access token lacks the whatsapp_business_messaging permission.",
    ("cloud_api", "200"): "The access token lacks the whatsapp_business_messaging permission.",
    ("cloud_api", "131030"): (
        "The destination is not in the test number's allowed list: add it in Meta's WhatsApp "
        "API setup page, or use a production number."
    ),
    ("cloud_api", "131047"): (
        "WhatsApp allows a free-form message only within 24 hours of the destination's last "
        "message to this number: write to the channel from that phone first."
    ),
    ("cloud_api", "131026"): "WhatsApp could not deliver to this number (not on WhatsApp?).",
    ("twilio", "no_credentials"): "The channel has no Twilio credentials: set them above.",
    ("cloud_api", "no_credentials"): "The channel has no access token: set it above.",
    ("cloud_api", "no_number_id"): "The channel has no phone number ID: set it above.",
}


@dataclass(frozen=True)
class TestSendOutcome:
    """What the provider answered to a test message.

    `accepted` with the provider's `message_id`, or else its error `code`, its reason
    (`detail`, scrubbed of phone numbers) and a `hint` in plain language ('' when none is
    known). `unconfirmed` when the answer was lost (the message may still arrive).
    """

    accepted: bool
    message_id: str = ""
    code: str = ""
    detail: str = ""
    hint: str = ""
    unconfirmed: bool = False


class TestSendThrottled(Exception):
    """Too many test messages from this channel lately."""


def _test_send_allowed(channel: ChannelInstance) -> bool:
    key = f"channel-test-send:{channel.pk}"
    cache.add(key, 0, timeout=TEST_SEND_WINDOW_SECONDS)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=TEST_SEND_WINDOW_SECONDS)
        count = 1
    return count <= TEST_SENDS_PER_WINDOW


def channel_send_test(*, channel: ChannelInstance, to_phone: str) -> TestSendOutcome:
    """Send TEST_MESSAGE_TEXT from the channel to `to_phone`, synchronously, through the
    channel's provider (the same code that sends replies), and say what the provider answered.

    Stores nothing: no contact, thread or message (the number is the person's own test
    phone, not a customer; the provider's later status callback for it finds no message and is
    ignored). Raises ValidationError for a number that is not E.164, TestSendThrottled past
    TEST_SENDS_PER_WINDOW sends per channel in TEST_SEND_WINDOW_SECONDS; any provider failure
    is an outcome, never an exception. Logs the channel and the outcome, never the number.
    """
    to_phone = (to_phone or "").strip()
    if not E164.match(to_phone):
        raise ValidationError({"to_phone": "Must be an E.164 number such as +14155238886."})
    if not _test_send_allowed(channel):
        raise TestSendThrottled()
    extra = {"channel_id": str(channel.pk), "provider": channel.provider}
    try:
        provider = get_provider(channel)
        result = provider.send(
            channel=channel, payload=OutboundPayload(to_phone=to_phone, text=TEST_MESSAGE_TEXT)
        )
    except ProviderError as exc:
        code = exc.code or type(exc).__name__
        logger.info("channel test message refused", extra={**extra, "code": code})
        return TestSendOutcome(
            accepted=False,
            code=code,
            detail=scrub(str(exc)),
            hint=TEST_SEND_HINTS.get((channel.provider, code), "") or _generic_hint(exc),
            unconfirmed=isinstance(exc, AmbiguousSendError),
        )
    except Exception:  # noqa: BLE001 - an unexpected error is an outcome too
        logger.exception("channel test message raised", extra=extra)
        return TestSendOutcome(
            accepted=False,
            code="error",
            detail="The provider call failed unexpectedly.",
            unconfirmed=True,
        )
    logger.info("channel test message accepted", extra=extra)
    return TestSendOutcome(accepted=True, message_id=result.provider_message_id)


def _generic_hint(exc: ProviderError) -> str:
    if isinstance(exc, AmbiguousSendError):
        return "The provider's answer was lost: the message may still arrive."
    if isinstance(exc, TransientSendError):
        return "The provider is busy or could not be reached: try again in a minute."
    return ""
