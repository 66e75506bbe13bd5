"""Flow versions: validating a flow document, storing a new version, activating one."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from channels_app.models import ChannelInstance
from flows import selectors
from flows.engine import ValidationIssue, normalize, parse_flow, validate_flow
from flows.models import Flow
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def flow_validate(*, definition: Any) -> list[ValidationIssue]:
    """Every problem of a flow document, each with its JSON path; empty when valid."""
    return list(validate_flow(definition))


@transaction.atomic
def flow_create(
    *,
    tenant: Tenant,
    channel: ChannelInstance,
    definition: dict,
    activate: bool = True,
    created_by: Any = None,
) -> Flow:
    """Store a new version of `definition["flow_id"]` on `channel`.

    Guarantees: the whole definition is validated first and nothing is stored when it is
    invalid (`FlowValidationError` with every issue); versions of one (channel, flow_id) are
    1, 2, 3... without gaps or collisions, also under concurrent uploads (the channel row is
    locked while the next number is taken); with `activate`, the new version is the only
    active one of its flow_id on the channel. A channel of another tenant raises
    ValidationError. Sessions already running keep the version they started with.
    """
    parsed = parse_flow(definition)
    if channel.tenant_id != tenant.pk:
        raise ValidationError({"channel": "This channel does not belong to the tenant."})
    ChannelInstance.objects.select_for_update().only("pk").get(pk=channel.pk)
    latest = (
        Flow.all_objects.filter(channel=channel, flow_id=parsed.flow_id)
        .order_by("-version")
        .values_list("version", flat=True)
        .first()
    )
    if activate:
        _deactivate_other_versions(channel_id=channel.pk, flow_id=parsed.flow_id)
    keywords: list[str] = []
    for keyword in parsed.trigger.keywords:
        value = normalize(keyword)
        if value and value not in keywords:
            keywords.append(value)
    flow = Flow.objects.create(
        tenant=tenant,
        channel=channel,
        flow_id=parsed.flow_id,
        version=(latest or 0) + 1,
        name=parsed.name,
        definition=definition,
        is_active=activate,
        trigger_keywords=keywords,
        trigger_match=parsed.trigger.match,
        is_default=parsed.trigger.default,
        weight=parsed.trigger.weight,
        ignore_keywords=parsed.settings.ignore_keywords,
        created_by=created_by,
    )
    _invalidate_on_commit(channel.pk)
    logger.info(
        "flow version created",
        extra={"flow": str(flow.pk), "flow_id": flow.flow_id, "version": flow.version},
    )
    return flow


@transaction.atomic
def flow_set_active(*, flow: Flow, is_active: bool) -> Flow:
    """Activate or deactivate one flow version.

    Activating deactivates every other version of the same flow_id on the channel (at most one
    is active). Running sessions are not touched: they finish on their own version.
    """
    ChannelInstance.objects.select_for_update().only("pk").get(pk=flow.channel_id)
    if is_active:
        _deactivate_other_versions(
            channel_id=flow.channel_id, flow_id=flow.flow_id, keep_pk=flow.pk
        )
    if flow.is_active != is_active:
        flow.is_active = is_active
        flow.save(update_fields=["is_active", "updated_at"])
    _invalidate_on_commit(flow.channel_id)
    return flow


def _deactivate_other_versions(*, channel_id: Any, flow_id: str, keep_pk: Any = None) -> None:
    others = Flow.objects.filter(channel_id=channel_id, flow_id=flow_id, is_active=True)
    if keep_pk is not None:
        others = others.exclude(pk=keep_pk)
    others.update(is_active=False, updated_at=timezone.now())


def _invalidate_on_commit(channel_id: Any) -> None:
    """Drop the cached active flows now (this transaction's own reads see the change) and again
    after commit (a reader that cached the old rows meanwhile is overruled)."""
    selectors.flow_candidates_invalidate(channel_id=channel_id)
    transaction.on_commit(lambda: selectors.flow_candidates_invalidate(channel_id=channel_id))
