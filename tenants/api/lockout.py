"""How long a locked-out login must wait, for the Retry-After header."""

import math

from axes.helpers import get_cache, get_client_cache_keys, get_cool_off, get_credentials
from django.http import HttpRequest

_FALLBACK_SECONDS = 60


def login_retry_after(request: HttpRequest, username: str) -> int:
    """Seconds until the lockout of this username/address ends (at least 1).

    The cache keeps the failure counters for the cool-off after the latest failure; django-axes
    re-arms them on every attempt made during the lockout (its default,
    AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT). So the remaining time is the counters' TTL
    when the cache can tell it (django-redis), else the whole cool-off.
    """
    cool_off = get_cool_off(request)
    full = math.ceil(cool_off.total_seconds()) if cool_off else _FALLBACK_SECONDS
    cache = get_cache()
    ttl = getattr(cache, "ttl", None)
    if callable(ttl):
        try:
            keys = get_client_cache_keys(request, get_credentials(username))
            remaining = [ttl(key) for key in keys]
            remaining = [value for value in remaining if isinstance(value, int) and value > 0]
            if remaining:
                return max(1, min(full, max(remaining)))
        except Exception:  # noqa: BLE001 - the TTL is a refinement; the cool-off is correct
            pass
    return max(1, full)
