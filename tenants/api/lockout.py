"""How long a locked-out login must wait, for the Retry-After header."""

import math

from axes.helpers import get_cool_off, get_credentials
from django.http import HttpRequest

from core.lockout import login_lockout_remaining

_FALLBACK_SECONDS = 60


def login_retry_after(request: HttpRequest, username: str) -> int:
    """Seconds until the lockout of this username/address ends (at least 1).

    The cache keeps each failure counter for the cool-off after its latest failure; every
    attempt, including one refused during the lockout, re-arms it (django-axes' default,
    AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT). So the remaining time is the TTL of the
    counters that are at their limit when the cache can tell it (django-redis), else the whole
    cool-off.
    """
    cool_off = get_cool_off(request)
    full = math.ceil(cool_off.total_seconds()) if cool_off else _FALLBACK_SECONDS
    try:
        remaining = login_lockout_remaining(request, get_credentials(username))
    except Exception:  # noqa: BLE001 - the TTL is a refinement; the cool-off is correct
        remaining = None
    if remaining:
        return max(1, min(full, remaining))
    return max(1, full)
