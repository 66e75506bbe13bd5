"""PostgreSQL advisory locks keyed by a row's UUID, in separate namespaces per purpose.

On other databases (SQLite serialises writers) the locks are no-ops that always succeed.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError, connection

# Namespaces (the first key of the two-key form): one per kind of lock.
THREAD_INSERT_ORDER = 7040
THREAD_SENDER = 7041
THREAD_PROCESSOR = 7042
CHANNEL_TEMPLATE_SYNC = 7043


def _key(object_id: object) -> int:
    """A signed 32-bit key from a UUID (collisions only serialise two unrelated rows).

    conversations_inbound_store (migration conversations/0003) computes the same key in SQL.
    """
    return int(uuid.UUID(str(object_id)).hex[16:24], 16) - (1 << 31)


@contextmanager
def try_advisory_lock(namespace: int, object_id: object) -> Iterator[bool]:
    """Try to take a session-level lock (held across transactions, e.g. across provider or
    model calls); yield whether it was taken, and release it on exit."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = _key(object_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])


class LockTimeout(Exception):
    """A lock was not free within the time given."""


def advisory_xact_locks(namespace: int, object_ids: list[object], *, timeout_seconds: int) -> None:
    """Wait, at most `timeout_seconds` for each, for the locks of `object_ids`, held until
    the current transaction ends; taken in key order, so two callers never deadlock.
    Raises LockTimeout (the transaction is then unusable: leave it). Call inside a
    transaction."""
    if connection.vendor != "postgresql" or not object_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
            [f"{int(timeout_seconds)}s"],
        )
        previous = cursor.fetchone()[0]
        try:
            for object_id in sorted(object_ids, key=_key):
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [namespace, _key(object_id)])
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", "") == "55P03":  # lock_not_available
                raise LockTimeout(f"lock {namespace} not free in {timeout_seconds} s") from exc
            raise
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


def advisory_xact_lock(namespace: int, object_id: object) -> None:
    """Wait for a lock held until the current transaction ends. Call inside a transaction."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [namespace, _key(object_id)])
