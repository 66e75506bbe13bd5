"""System checks: a bad CHANNEL_PROVIDERS is reported by `manage.py check` (and at start-up)
by its entry, instead of as a traceback from the first request that needs a provider."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register()
def check_channel_providers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """CHANNEL_PROVIDERS loads: every entry a Provider class with a unique code, its own
    webhook path (if any) a slug no other provider claims, its fields not named like the
    channel's own."""
    from channels_app.providers.registry import _load

    try:
        _load()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                str(exc),
                hint="Each entry is the dotted path of a Provider subclass, comma-separated.",
                id="channels_app.E001",
            )
        ]
    return []
