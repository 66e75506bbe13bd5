"""The installed providers, loaded from `settings.CHANNEL_PROVIDERS` (dotted class paths).

Like RapidPro's `CHANNEL_TYPES`: adding a provider is one module with a `Provider` subclass
and one line in the setting. The registry is built on first use and rebuilt when the setting
changes (`override_settings` in tests sends `setting_changed`); `registry_reload()` rebuilds
it on demand.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from channels_app.providers.base import Provider

if TYPE_CHECKING:
    from channels_app.models import ChannelInstance

DEFAULT_CHANNEL_PROVIDERS = (
    "channels_app.providers.twilio.TwilioProvider",
    "channels_app.providers.cloud_api.CloudApiProvider",
    "channels_app.providers.sandbox.SandboxProvider",
)

_lock = threading.Lock()
_providers: dict[str, Provider] | None = None


def _load() -> dict[str, Provider]:
    loaded: dict[str, Provider] = {}
    for path in getattr(settings, "CHANNEL_PROVIDERS", DEFAULT_CHANNEL_PROVIDERS):
        cls = import_string(path)
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise ImproperlyConfigured(f"CHANNEL_PROVIDERS: {path} is not a Provider class.")
        provider = cls()
        if not provider.code or len(provider.code) > 20:
            raise ImproperlyConfigured(f"CHANNEL_PROVIDERS: {path} needs a code of 1-20 chars.")
        if provider.code in loaded:
            raise ImproperlyConfigured(f"CHANNEL_PROVIDERS: code {provider.code!r} is twice.")
        loaded[provider.code] = provider
    return loaded


def providers() -> dict[str, Provider]:
    """The installed providers by code, in the setting's order."""
    global _providers
    current = _providers
    if current is None:
        with _lock:
            if _providers is None:
                _providers = _load()
            current = _providers
    return current


def registry_reload() -> dict[str, Provider]:
    """Load the providers from the setting again (after it changed)."""
    global _providers
    with _lock:
        _providers = None
    return providers()


def provider_for_code(code: str) -> Provider:
    """The installed provider with this code. Raises LookupError for any other code."""
    try:
        return providers()[code]
    except KeyError:
        raise LookupError(f"No provider named {code!r}.") from None


def provider_choices() -> list[tuple[str, str]]:
    """(code, name) of every installed provider, for forms and the API."""
    return [(code, provider.name or code) for code, provider in providers().items()]


def provider_label(code: str) -> str:
    """The short label a channel's name shows for its provider (the code when unknown)."""
    provider = providers().get(code)
    return provider.label if provider is not None else code


def _reload_on_change(*, setting: str, **_kwargs: object) -> None:
    if setting == "CHANNEL_PROVIDERS":
        global _providers
        with _lock:
            _providers = None


setting_changed.connect(_reload_on_change)


def channel_provider(channel: ChannelInstance) -> Provider:
    return provider_for_code(channel.provider)
