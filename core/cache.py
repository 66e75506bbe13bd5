"""A cache that uses Redis and falls back to local memory while Redis is unreachable.

Login lockout counters, rate limits and locks keep working (per process) when Redis is down;
once Redis answers again, the primary is used again. Each failure is logged without the key.
"""

import logging
import time
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache

logger = logging.getLogger(__name__)

_RETRY_AFTER_SECONDS = 5.0


class FallbackCache(BaseCache):
    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        options = params.get("OPTIONS", {})
        self._primary_alias = options.get("PRIMARY", "redis")
        self._fallback_alias = options.get("FALLBACK", "local")
        self._down_until = 0.0

    @property
    def degraded(self) -> bool:
        return time.monotonic() < self._down_until

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if not self.degraded:
            try:
                return getattr(caches[self._primary_alias], method)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any Redis failure means "use the fallback"
                self._down_until = time.monotonic() + _RETRY_AFTER_SECONDS
                logger.warning(
                    "cache primary unavailable, using local fallback",
                    extra={"error": type(exc).__name__},
                )
        return getattr(caches[self._fallback_alias], method)(*args, **kwargs)

    def add(self, key: str, value: Any, timeout: Any = None, version: Any = None) -> bool:
        return bool(self._call("add", key, value, timeout=timeout, version=version))

    def get(self, key: str, default: Any = None, version: Any = None) -> Any:
        return self._call("get", key, default=default, version=version)

    def set(self, key: str, value: Any, timeout: Any = None, version: Any = None) -> None:
        self._call("set", key, value, timeout=timeout, version=version)

    def touch(self, key: str, timeout: Any = None, version: Any = None) -> bool:
        return bool(self._call("touch", key, timeout=timeout, version=version))

    def delete(self, key: str, version: Any = None) -> bool:
        return bool(self._call("delete", key, version=version))

    def get_many(self, keys: Any, version: Any = None) -> dict[str, Any]:
        return dict(self._call("get_many", keys, version=version))

    def set_many(self, data: dict[str, Any], timeout: Any = None, version: Any = None) -> list[str]:
        return list(self._call("set_many", data, timeout=timeout, version=version) or [])

    def delete_many(self, keys: Any, version: Any = None) -> None:
        self._call("delete_many", keys, version=version)

    def incr(self, key: str, delta: int = 1, version: Any = None) -> int:
        return int(self._call("incr", key, delta=delta, version=version))

    def has_key(self, key: str, version: Any = None) -> bool:
        return bool(self._call("has_key", key, version=version))

    def clear(self) -> None:
        self._call("clear")

    def ping(self) -> bool:
        """True when the primary answers right now (used by /readyz)."""
        try:
            caches[self._primary_alias].get("chatai:ping")
        except Exception:  # noqa: BLE001
            return False
        return True
