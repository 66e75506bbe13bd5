"""A channel's message templates: synced from its provider, listed, looked up for a send.

Outside WhatsApp's 24-hour service window only templates the provider approved may be sent.
`channel_templates_sync` asks the provider for every template of the channel (the Cloud API's
`message_templates` of the channel's WhatsApp Business Account, Twilio's Content API) and
stores them: new ones are added, known ones updated, and those the provider no longer lists
are marked gone (never deleted: a sent message may name them). A sync the provider refuses
changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from channels_app.models import ChannelInstance, ChannelTemplate, TemplateStatus
from channels_app.providers import get_provider
from channels_app.providers.base import FetchedTemplate, TemplateSyncError
from channels_app.providers.registry import providers
from core import locks
from core.context import tenant_bound

logger = logging.getLogger(__name__)

__all__ = [
    "SETUP_CODES",
    "SyncReport",
    "TemplateSyncError",
    "channel_templates",
    "channel_templates_sync",
    "sendable_templates",
    "templates_sync_all",
]

_FIELDS = (
    "category",
    "status",
    "provider_template_id",
    "body",
    "components",
    "parameters",
    "named",
    "rejection_reason",
)


@dataclass(frozen=True)
class SyncReport:
    created: int = 0
    updated: int = 0
    gone: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "gone": self.gone}


def _key(name: str, language: str, content_sid: str) -> tuple[str, ...]:
    return ("sid", content_sid) if content_sid else ("name", name, language)


def channel_templates_sync(*, channel: ChannelInstance) -> SyncReport:
    """Replace the channel's stored templates by what its provider lists now.

    Raises TemplateSyncError (with the provider's code and reason) when the provider cannot
    be asked or refuses; nothing is stored then. The provider is called outside any
    transaction; the rows are written in one.
    """
    with tenant_bound(channel.tenant_id):
        try:
            fetched = get_provider(channel).templates_fetch(channel=channel)
        except LookupError:
            raise TemplateSyncError(
                "The channel's provider is not installed.", code="provider_missing"
            ) from None
        except TemplateSyncError as exc:
            logger.warning(
                "template sync failed",
                extra={"channel_id": str(channel.pk), "code": exc.code, "status": exc.status},
            )
            raise
        report = _store(channel, fetched)
        counts = {f"templates_{key}": value for key, value in report.as_dict().items()}
        logger.info("templates synced", extra={"channel_id": str(channel.pk), **counts})
        return report


def _sync_lock(channel: ChannelInstance) -> None:
    """One sync of a channel at a time (call first in the sync's transaction): a second one
    waits and then sees the first's rows (two first syncs would both insert the same template:
    an IntegrityError). On PostgreSQL an advisory lock per channel; on SQLite, whose writers
    are serialised, the database's write lock taken before anything is read (a transaction
    that read first cannot write after another one committed: "database is locked")."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {ChannelTemplate._meta.db_table} SET id = id WHERE 0")
    else:
        locks.advisory_xact_lock(locks.CHANNEL_TEMPLATE_SYNC, channel.pk)


@transaction.atomic
def _store(channel: ChannelInstance, fetched: list[FetchedTemplate]) -> SyncReport:
    _sync_lock(channel)
    now = timezone.now()
    latest = {_key(t.name, t.language, t.content_sid): t for t in fetched}
    existing = {
        _key(row.name, row.language, row.content_sid): row
        for row in ChannelTemplate.objects.select_for_update().filter(channel=channel)
    }
    created = updated = gone = 0
    for key, template in latest.items():
        values: dict[str, Any] = {
            "category": template.category,
            "status": template.status,
            "provider_template_id": template.provider_template_id,
            "body": template.body,
            "components": template.components,
            "parameters": list(template.parameters),
            "named": template.named,
            "rejection_reason": template.rejection_reason,
        }
        row = existing.get(key)
        if row is None:
            ChannelTemplate.objects.create(
                tenant_id=channel.tenant_id,
                channel=channel,
                name=template.name,
                language=template.language,
                content_sid=template.content_sid,
                synced_at=now,
                **values,
            )
            created += 1
            continue
        for field, value in values.items():
            setattr(row, field, value)
        # a Twilio content may be renamed or change language under the same SID
        row.name, row.language = template.name, template.language
        row.synced_at, row.gone_at = now, None
        row.save(update_fields=[*_FIELDS, "name", "language", "synced_at", "gone_at", "updated_at"])
        updated += 1
    for key, row in existing.items():
        if key not in latest and row.gone_at is None:
            row.gone_at = now
            row.save(update_fields=["gone_at", "updated_at"])
            gone += 1
    return SyncReport(created=created, updated=updated, gone=gone)


# Codes of a sync that could not even ask the provider: the channel's setup (e.g. a Cloud API
# channel without `business_account_id`), not the provider's answer.
SETUP_CODES = frozenset(
    {
        "no_business_account_id",
        "no_credentials",
        "platform_credentials",
        "templates_unsupported",
        "provider_missing",
    }
)


def templates_sync_all() -> dict[str, int]:
    """Sync every active channel whose provider has templates (the periodic task). A channel
    not set up for it is counted as skipped, one whose provider refused or whose sync crashed
    as failed (logged with the code or the error type only); the others go on."""
    codes = [code for code, provider in providers().items() if provider.supports_templates]
    counts = {"synced": 0, "failed": 0, "skipped": 0}
    channels = ChannelInstance.objects.filter(is_active=True, provider__in=codes)
    for channel in channels.order_by("pk"):
        try:
            channel_templates_sync(channel=channel)
        except TemplateSyncError as exc:
            counts["skipped" if exc.code in SETUP_CODES else "failed"] += 1
        except Exception as exc:  # one channel's bug must not stop the others' sync
            logger.error(
                "template sync crashed",
                extra={"channel_id": str(channel.pk), "error": type(exc).__name__},
            )
            counts["failed"] += 1
        else:
            counts["synced"] += 1
    return counts


def channel_templates(*, channel: ChannelInstance) -> QuerySet[ChannelTemplate]:
    """The channel's stored templates, gone ones included, by name and language."""
    return ChannelTemplate.objects.filter(channel=channel).order_by("name", "language", "id")


def sendable_templates(*, channel_id: object) -> QuerySet[ChannelTemplate]:
    """The templates a message on the channel may use now: approved and still listed."""
    return ChannelTemplate.objects.filter(
        Q(channel_id=channel_id, status=TemplateStatus.APPROVED, gone_at__isnull=True)
    ).order_by("name", "language", "id")
