"""The login lockout: one failure counter per username at an address, one per address.

django-axes counts every failed login under each group of `AXES_LOCKOUT_PARAMETERS`; with
`[["username", "ip_address"], "ip_address"]` that is one counter for the username *at this
address* and one for the address alone. Its cache handler compares the largest of them with a
single `AXES_FAILURE_LIMIT` (a callable limit is called once per request, without knowing which
counter it is for), so it cannot give the address counter a higher limit. `LoginLockoutHandler`
keeps axes' counters, cache keys, signals and responses and only compares each counter with its
own limit:

- username at address: `AXES_FAILURE_LIMIT` (5). Someone guessing one account's password is
  stopped at their address; the account still logs in from anywhere else, so nobody can lock a
  staff member out from afar.
- address: `AXES_IP_FAILURE_LIMIT` (50). One address trying many usernames is stopped.

The address is `core.net.client_ip` (`AXES_CLIENT_IP_CALLABLE`).
"""

import logging
from dataclasses import dataclass
from typing import Any

from axes.conf import settings
from axes.handlers.cache import AxesCacheHandler
from axes.helpers import (
    get_cache,
    get_cache_timeout,
    get_client_ip_address,
    get_client_parameters,
    get_client_user_agent,
    get_client_username,
    get_credentials,
    get_failure_limit,
    get_lockout_parameters,
    make_cache_key_list,
)
from axes.signals import user_locked_out
from django.core.cache import BaseCache
from django.http import HttpRequest

log = logging.getLogger(__name__)

ADDRESS = "address"
USERNAME_AT_ADDRESS = "username_at_address"


@dataclass(frozen=True)
class LoginCounter:
    kind: str  # ADDRESS or USERNAME_AT_ADDRESS (or the joined parameter names of another group)
    key: str
    limit: int


def _kind(parameter: str | list[str]) -> str:
    names = [parameter] if isinstance(parameter, str) else list(parameter)
    if names == ["ip_address"]:
        return ADDRESS
    if sorted(names) == ["ip_address", "username"]:
        return USERNAME_AT_ADDRESS
    return "_".join(names)


def login_counters(request: Any, credentials: dict[str, Any] | None = None) -> list[LoginCounter]:
    """The counters a login attempt of this request counts against, each with its limit.

    One per group of `AXES_LOCKOUT_PARAMETERS`, with axes' own cache keys (so `axes_reset`
    clears them). The address group has `AXES_IP_FAILURE_LIMIT`, every other group
    `AXES_FAILURE_LIMIT`. An attempt without a username counts against its address only (its
    username group would have the address's key, and be counted twice).
    """
    username = get_client_username(request, credentials)
    ip_address = get_client_ip_address(request)
    parameters = get_lockout_parameters(request, credentials)
    groups = get_client_parameters(
        username, ip_address, get_client_user_agent(request), request, credentials
    )
    counters = []
    for parameter, group in zip(parameters, groups, strict=True):
        if "username" in group and not username:
            continue
        kind = _kind(parameter)
        limit = (
            settings.AXES_IP_FAILURE_LIMIT
            if kind == ADDRESS
            else get_failure_limit(request, credentials)
        )
        counters.append(LoginCounter(kind=kind, key=make_cache_key_list([group])[0], limit=limit))
    return counters


class LoginLockoutHandler(AxesCacheHandler):
    """axes' cache handler with a limit per counter (see the module docstring).

    A login is refused while any of its counters is at its limit. Every failure, including one
    refused during a lockout, adds one to each counter and re-arms its cool-off. A successful
    login (`AXES_RESET_ON_SUCCESS`) clears the username-at-address counter only: the address
    counter also holds failures for other usernames, which one account's success does not
    excuse (else anyone with one working login could wipe it between guesses); it runs out with
    the cool-off.

    Logs carry the counter kind and counts, never the username or the address.
    """

    def __init__(self) -> None:
        # No cache bound at start-up: the configured one is looked up on each use (tests and
        # the Redis fallback swap caches).
        pass

    @property
    def cache(self) -> BaseCache:
        return get_cache()

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        counters = login_counters(request, credentials)
        if not counters:
            return 0
        values = self.cache.get_many([counter.key for counter in counters])
        return max(int(values.get(counter.key, 0)) for counter in counters)

    def locked_counters(
        self, request: Any, credentials: dict[str, Any] | None = None
    ) -> list[LoginCounter]:
        """The counters of this request that are at or over their limit."""
        counters = login_counters(request, credentials)
        values = self.cache.get_many([counter.key for counter in counters])
        return [c for c in counters if int(values.get(c.key, 0)) >= c.limit]

    def is_locked(self, request: Any, credentials: dict[str, Any] | None = None) -> bool:
        if not settings.AXES_LOCK_OUT_AT_FAILURE:
            return False
        return bool(self.locked_counters(request, credentials))

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
    ) -> None:
        if request is None:
            log.error("login lockout: a failed login without a request is not counted")
            return
        username = get_client_username(request, credentials)
        if not settings.AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT and request.axes_locked_out:
            request.axes_credentials = credentials
            user_locked_out.send(
                "axes", request=request, username=username, ip_address=request.axes_ip_address
            )
            return
        if self.is_whitelisted(request, credentials):
            return

        cache = self.cache
        timeout = get_cache_timeout(request)
        reached = []
        for counter in login_counters(request, credentials):
            if cache.add(counter.key, 1, timeout=timeout):
                failures = 1
            else:
                failures = cache.incr(counter.key)
                cache.touch(counter.key, timeout=timeout)
            if failures >= counter.limit:
                reached.append((counter, failures))
        request.axes_failures_since_start = max((f for _, f in reached), default=0)

        if settings.AXES_LOCK_OUT_AT_FAILURE and reached:
            for counter, failures in reached:
                # Only the crossing is news; later attempts during the lockout are not logged.
                if failures == counter.limit:
                    log.warning(
                        "login locked out",
                        extra={"counter": counter.kind, "failures": failures},
                    )
            request.axes_locked_out = True
            request.axes_credentials = credentials
            user_locked_out.send(
                "axes", request=request, username=username, ip_address=request.axes_ip_address
            )

    def user_logged_in(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        if not settings.AXES_RESET_ON_SUCCESS:
            return
        credentials = get_credentials(user.get_username())
        self.cache.delete_many(
            [
                counter.key
                for counter in login_counters(request, credentials)
                if counter.kind != ADDRESS
            ]
        )

    def user_logged_out(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        pass


def login_lockout_remaining(request: HttpRequest, credentials: dict[str, Any]) -> int | None:
    """Seconds until this request's lockout ends, when the cache can tell (django-redis's
    `ttl`); None otherwise, or when it is not locked out.

    Every failure re-arms each counter for the cool-off, so the lockout ends when the last of
    its locked counters expires.
    """
    cache = get_cache()
    ttl = getattr(cache, "ttl", None)
    if not callable(ttl):
        return None
    locked = LoginLockoutHandler().locked_counters(request, credentials)
    remaining = [ttl(counter.key) for counter in locked]
    remaining = [value for value in remaining if isinstance(value, int) and value > 0]
    return max(remaining) if remaining else None
