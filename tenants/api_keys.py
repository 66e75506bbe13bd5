"""Tenant API keys: created once, stored as a SHA-256, found by their visible prefix.

A key reads `chk_<8 hex>.<43 url-safe chars>`. The prefix (`chk_<8 hex>`) is stored in clear to
find the row; the whole key is only ever compared as a SHA-256 with `hmac.compare_digest`.
"""

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from tenants.models import Tenant, TenantAPIKey

logger = logging.getLogger(__name__)

KEY_PREFIX = "chk_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def api_key_create(*, tenant: Tenant, name: str) -> tuple[TenantAPIKey, str]:
    """Create a key for `tenant`; return the row and the key, which is never retrievable again."""
    for _attempt in range(5):
        prefix = f"{KEY_PREFIX}{secrets.token_hex(4)}"
        raw_key = f"{prefix}.{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                api_key = TenantAPIKey.objects.create(
                    tenant=tenant, name=name, prefix=prefix, hashed_key=api_key_hash(raw_key)
                )
        except IntegrityError:  # a prefix collision: 1 in 4 billion, try another
            continue
        logger.info("api key created", extra={"api_key_id": str(api_key.pk)})
        return api_key, raw_key
    raise RuntimeError("Could not allocate a unique API key prefix.")


def api_key_revoke(*, api_key: TenantAPIKey) -> TenantAPIKey:
    """Revoke the key from now on (idempotent: the first revocation time is kept)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])
        logger.info("api key revoked", extra={"api_key_id": str(api_key.pk)})
    return api_key


def api_key_authenticate(*, raw_key: str, now: datetime | None = None) -> TenantAPIKey | None:
    """The live, unrevoked key of a live, active tenant matching `raw_key`, else None.

    The key's `tenant` is loaded with it. Records use (at most once a minute per key).
    """
    prefix, dot, secret = raw_key.partition(".")
    if not dot or not secret or not prefix.startswith(KEY_PREFIX) or len(prefix) > 16:
        return None
    api_key = (
        TenantAPIKey.objects.select_related("tenant")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.hashed_key, api_key_hash(raw_key)):
        return None
    if api_key.tenant.deleted_at is not None or not api_key.tenant.is_active:
        return None
    api_key_touch(api_key=api_key, now=now)
    return api_key


def api_key_touch(*, api_key: TenantAPIKey, now: datetime | None = None) -> None:
    """Set `last_used_at`, writing at most once per minute per key (even across processes)."""
    now = now or timezone.now()
    threshold = now - LAST_USED_RESOLUTION
    if api_key.last_used_at is not None and api_key.last_used_at > threshold:
        return
    updated = (
        TenantAPIKey.objects.filter(pk=api_key.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=threshold))
        .update(last_used_at=now)
    )
    if updated:
        api_key.last_used_at = now
