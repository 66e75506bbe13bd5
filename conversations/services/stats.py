"""Per-tenant numbers for the dashboard, computed with database aggregates."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from conversations.models import ChatThread, Direction, Message, ThreadStatus
from flows.models import FlowSession, SessionStatus
from tenants.models import Tenant

MIN_DAYS, MAX_DAYS, DEFAULT_DAYS = 1, 365, 30


def tenant_stats(*, tenant: Tenant, days: int = DEFAULT_DAYS, now: datetime | None = None) -> dict:
    """The tenant's activity over the last `days` UTC calendar days, today included.

    - `messages`: one row per day of the window (days without messages are zeros), counts of
      inbound and outbound messages created that day;
    - `threads`: open threads and open threads that need a human, right now;
    - `flows`: per flow_id (all versions together), the sessions started in the window and,
      among them, how many completed, were handed off (`FlowSession.handed_off`), expired or
      failed; `completion_rate` is completed / started (null when nothing started).

    Four aggregate queries whatever the volume. Raises ValueError for `days` outside 1..365.
    """
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"days must be between {MIN_DAYS} and {MAX_DAYS}.")
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    first_day = today - timedelta(days=days - 1)
    since = datetime.combine(first_day, time.min, tzinfo=UTC)

    per_day = (
        Message.objects.filter(tenant=tenant, created_at__gte=since, created_at__lte=now)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(
            inbound=Count("id", filter=Q(direction=Direction.INBOUND)),
            outbound=Count("id", filter=Q(direction=Direction.OUTBOUND)),
        )
        .order_by("day")
    )
    by_day: dict[date, dict[str, int]] = {
        _as_date(row["day"]): {"inbound": row["inbound"], "outbound": row["outbound"]}
        for row in per_day
    }
    messages = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        counts = by_day.get(day, {"inbound": 0, "outbound": 0})
        messages.append({"date": day, **counts})

    threads = ChatThread.objects.filter(tenant=tenant, status=ThreadStatus.OPEN).aggregate(
        open=Count("id"), needs_human=Count("id", filter=Q(needs_human=True))
    )

    per_flow = (
        FlowSession.objects.filter(tenant=tenant, created_at__gte=since, created_at__lte=now)
        .values("flow__flow_id")
        .annotate(
            name=Max("flow__name"),
            started=Count("id"),
            completed=Count("id", filter=Q(status=SessionStatus.COMPLETED)),
            handed_off=Count("id", filter=Q(handed_off=True)),
            expired=Count("id", filter=Q(status=SessionStatus.EXPIRED)),
            failed=Count("id", filter=Q(status=SessionStatus.FAILED)),
        )
        .order_by("flow__flow_id")
    )
    flows: list[dict[str, Any]] = [
        {
            "flow_id": row["flow__flow_id"],
            "name": row["name"],
            "started": row["started"],
            "completed": row["completed"],
            "handed_off": row["handed_off"],
            "expired": row["expired"],
            "failed": row["failed"],
            "completion_rate": round(row["completed"] / row["started"], 4)
            if row["started"]
            else None,
        }
        for row in per_flow
    ]
    return {
        "days": days,
        "since": since,
        "until": now,
        "messages": messages,
        "threads": {"open": threads["open"], "needs_human": threads["needs_human"]},
        "flows": flows,
    }


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):  # some backends hand back ISO text
        return date.fromisoformat(value[:10])
    return value
