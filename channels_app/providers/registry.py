"""The installed providers, loaded from `settings.CHANNEL_PROVIDERS` (dotted class paths).

Like RapidPro's `CHANNEL_TYPES`: adding a provider is one module with a `Provider` subclass
and one line in the setting. The registry is built on first use and rebuilt when the setting
changes (`override_settings` in tests sends `setting_changed`); `registry_reload()` rebuilds
it on demand.
"""

from __future__ import annotations

import re
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

# The channel form's own inputs and the model's fields: a provider's setting or secret must
# not take one of these names (its input would replace the form's own field).
RESERVED_FIELD_KEYS = frozenset(
    {
        "id",
        "tenant",
        "name",
        "provider",
        "channel_type",
        "identifier",
        "phone_number",
        "settings",
        "secrets",
        "secrets_set",
        "is_active",
        "created_at",
        "updated_at",
        "deleted_at",
    }
)
_WEBHOOK_PATH = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")

_lock = threading.Lock()
_providers: dict[str, Provider] | None = None
_generation = 0  # bumped whenever the setting changes: a build of older settings is dropped


def provider_paths() -> list[str]:
    """The dotted paths of CHANNEL_PROVIDERS, stripped, empty entries left out."""
    configured = getattr(settings, "CHANNEL_PROVIDERS", DEFAULT_CHANNEL_PROVIDERS)
    if isinstance(configured, str):
        configured = configured.split(",")
    return [str(path).strip() for path in configured if str(path).strip()]


def _load() -> dict[str, Provider]:
    """The providers of the setting. Raises ImproperlyConfigured naming the bad entry."""
    loaded: dict[str, Provider] = {}
    paths: dict[str, str] = {}
    for path in provider_paths():
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f"CHANNEL_PROVIDERS: cannot import {path!r}.") from exc
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise ImproperlyConfigured(f"CHANNEL_PROVIDERS: {path} is not a Provider class.")
        provider = cls()
        if not provider.code or len(provider.code) > 20:
            raise ImproperlyConfigured(f"CHANNEL_PROVIDERS: {path} needs a code of 1-20 chars.")
        if provider.code in loaded:
            raise ImproperlyConfigured(f"CHANNEL_PROVIDERS: code {provider.code!r} is twice.")
        _check_fields(path, provider)
        if provider.webhook_path:
            if not _WEBHOOK_PATH.match(provider.webhook_path):
                raise ImproperlyConfigured(
                    f"CHANNEL_PROVIDERS: {path} has a webhook_path that is not a slug."
                )
            if provider.webhook_path in paths:
                raise ImproperlyConfigured(
                    f"CHANNEL_PROVIDERS: {path} and {paths[provider.webhook_path]} both claim "
                    f"the webhook path {provider.webhook_path!r}."
                )
            paths[provider.webhook_path] = path
        loaded[provider.code] = provider
    return loaded


def _check_fields(path: str, provider: Provider) -> None:
    keys = [field.key for field in (*provider.settings_fields, *provider.secret_fields)]
    clashing = sorted(set(keys) & RESERVED_FIELD_KEYS)
    if clashing:
        raise ImproperlyConfigured(
            f"CHANNEL_PROVIDERS: {path} declares fields named like the channel's own: "
            f"{', '.join(clashing)}."
        )
    if len(set(keys)) != len(keys):
        raise ImproperlyConfigured(f"CHANNEL_PROVIDERS: {path} declares a field twice.")


def providers() -> dict[str, Provider]:
    """The installed providers by code, in the setting's order.

    Built outside the lock (a provider's module may import anything, even code that asks for
    the registry, without a deadlock) and published under it in one assignment; concurrent
    first calls may each build, the first to publish wins."""
    global _providers
    current = _providers
    if current is not None:
        return current
    with _lock:
        generation = _generation
    built = _load()
    with _lock:
        if _providers is None and generation == _generation:
            _providers = built
        current = _providers if _providers is not None else built
    return current


def registry_reload() -> dict[str, Provider]:
    """Load the providers from the setting again (after it changed)."""
    _forget()
    return providers()


def _forget() -> None:
    global _providers, _generation
    with _lock:
        _providers = None
        _generation += 1


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
        _forget()


setting_changed.connect(_reload_on_change)


def channel_provider(channel: ChannelInstance) -> Provider:
    return provider_for_code(channel.provider)
