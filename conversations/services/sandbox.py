"""What a real provider's status callbacks do, for sandbox channels: sent → delivered → read.

`sandbox_statuses_advance` runs every second or two (the beat schedule's `sandbox-statuses`,
run by Celery beat or by the embedded scheduler, see core/scheduler.py) and feeds each message
its next status through `message_status_update`, the function the webhooks call, so the inbox
ticks move exactly as they do with Twilio or Meta.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from channels_app.models import Provider
from channels_app.providers import ParsedStatus
from channels_app.providers.sandbox import sandbox_enabled
from conversations.models import Direction, Message, MessageStatus
from conversations.services.outbound import message_status_update

# How long a sandbox message stays sent before it is delivered, and delivered before read.
STEP = timedelta(seconds=2)
BATCH = 200


def sandbox_statuses_advance(*, now: datetime | None = None) -> int:
    """Move each sandbox message one status on once it has been in its status for STEP.

    Returns how many moved. Does nothing where the sandbox is off. Each update is the same
    `message_status_update` a provider callback makes (forward only, timestamps filled in), so
    a message already read or failed is never touched and a run twice in a row is harmless.
    """
    if not sandbox_enabled():
        return 0
    now = now or timezone.now()
    due = now - STEP
    candidates = (
        Message.objects.filter(
            channel__provider=Provider.SANDBOX,
            direction=Direction.OUTBOUND,
            provider_message_id__isnull=False,
        )
        .filter(
            Q(status=MessageStatus.SENT, sent_at__lte=due)
            | Q(status=MessageStatus.DELIVERED, delivered_at__lte=due)
        )
        .select_related("channel")
        .order_by("created_at")[:BATCH]
    )
    moved = 0
    for message in candidates:
        following = (
            MessageStatus.DELIVERED if message.status == MessageStatus.SENT else MessageStatus.READ
        )
        status = ParsedStatus(
            provider_message_id=str(message.provider_message_id),
            status=following,
            raw_status=f"sandbox:{following}",
            timestamp=now,
        )
        if message_status_update(channel=message.channel, status=status) is not None:
            moved += 1
    return moved
