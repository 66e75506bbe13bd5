"""The dashboard's numbers (the admin's first page) and the stats API's: one computation, so
both report the same numbers under the same names.

Everything is a database aggregate: a fixed number of queries (at most eight) whatever the
history holds.
"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from conversations.failures import explain
from conversations.models import (
    ChatThread,
    Direction,
    Handoff,
    HandoffSource,
    Message,
    MessageStatus,
    ThreadStatus,
)
from flows.models import FlowEvent, FlowEventKind, FlowSession, SessionStatus
from tenants.models import Tenant

MIN_DAYS, MAX_DAYS, DEFAULT_DAYS = 1, 365, 30

# A flow's sessions by how they stand: each session is in exactly one of these, so they add up
# to `started`. A handoff ends its session with status "completed" and `handed_off` set: it
# counts as handed off, never as completed.
OUTCOMES = ("completed", "handed_off", "expired", "failed", "interrupted", "running")


def tenant_stats(*, tenant: Tenant, days: int = DEFAULT_DAYS, now: datetime | None = None) -> dict:
    """The tenant's activity over the last `days` UTC calendar days, today included.

    - `messages`: one row per day of the window (days without messages are zeros), counts of
      inbound and outbound messages created that day; `message_totals` sums them;
    - `threads`: right now, the open threads, those waiting for a human (`needs_human`) and
      when the longest of those waits began (`oldest_waiting_since`, null when none waits);
    - `flows`: per flow (`flow_id`, all versions together), the sessions started in the window
      and how each stands now: `completed` (reached an end without a handoff), `handed_off`,
      `expired`, `failed`, `interrupted` (a keyword, an opt-out or a human's takeover ended it)
      and `running` (still waiting for the contact); these add up to `started`.
      `completion_rate` is completed / started (null when nothing started). `ai_calls` and
      `ai_fallbacks`: the flow's AI node answers in the window, and how many of them fell back
      (the model failed or was not configured); calls = answered + fallbacks;
    - `ai`: the same AI numbers over all flows (`calls`, `answered`, `fallbacks`);
    - `handoffs`: waits for a human that began in the window (`started`), how many a human
      answered (`answered`), and the median time from the start to the first human reply
      (`median_first_reply_seconds`, over the answered ones; null when none);
    - `failed_sends`: outbound messages created in the window that failed, per error code,
      most frequent first, each with its reason in words (`conversations.failures`).

    At most eight queries whatever the volume. Raises ValueError for `days` outside 1..365.
    """
    return _stats(where={"tenant_id": tenant.pk}, days=days, now=now)


def platform_stats(*, days: int = DEFAULT_DAYS, now: datetime | None = None) -> dict:
    """`tenant_stats` over every tenant together (platform staff's dashboard); flows stay
    apart per tenant (two tenants' `welcome` flows are two rows, each naming its tenant)."""
    return _stats(where={}, days=days, now=now)


def _stats(*, where: dict[str, Any], days: int, now: datetime | None) -> dict:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"days must be between {MIN_DAYS} and {MAX_DAYS}.")
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    first_day = today - timedelta(days=days - 1)
    since = datetime.combine(first_day, time.min, tzinfo=UTC)
    window = {"created_at__gte": since, "created_at__lte": now}

    messages = _messages_per_day(where, window, first_day, days)
    flows = _flows(where, window)
    return {
        "days": days,
        "since": since,
        "until": now,
        "messages": messages,
        "message_totals": {
            "inbound": sum(day["inbound"] for day in messages),
            "outbound": sum(day["outbound"] for day in messages),
        },
        "threads": _threads(where),
        "flows": flows,
        "ai": {
            "calls": sum(flow["ai_calls"] for flow in flows),
            "answered": sum(flow["ai_calls"] - flow["ai_fallbacks"] for flow in flows),
            "fallbacks": sum(flow["ai_fallbacks"] for flow in flows),
        },
        "handoffs": _handoffs(where, since, now),
        "failed_sends": _failed_sends(where, window),
    }


def _messages_per_day(
    where: dict[str, Any], window: dict[str, Any], first_day: date, days: int
) -> list[dict[str, Any]]:
    per_day = (
        Message.objects.filter(**where, **window)
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
    rows = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        rows.append({"date": day, **by_day.get(day, {"inbound": 0, "outbound": 0})})
    return rows


def _threads(where: dict[str, Any]) -> dict[str, Any]:
    counts = ChatThread.objects.filter(**where, status=ThreadStatus.OPEN).aggregate(
        open=Count("id"), needs_human=Count("id", filter=Q(needs_human=True))
    )
    oldest = (
        Handoff.objects.filter(
            **where,
            ended_at__isnull=True,
            thread__status=ThreadStatus.OPEN,
            thread__needs_human=True,
            thread__deleted_at__isnull=True,
        )
        .aggregate(oldest=Min("started_at"))
        .get("oldest")
    )
    return {
        "open": counts["open"],
        "needs_human": counts["needs_human"],
        "oldest_waiting_since": oldest if counts["needs_human"] else None,
    }


def _flows(where: dict[str, Any], window: dict[str, Any]) -> list[dict[str, Any]]:
    # The annotations are named n_<outcome>: an annotation named like a field (`handed_off`)
    # would take the field's place in the filters that follow it.
    not_handed_off = Q(handed_off=False)
    sessions = (
        FlowSession.objects.filter(**where, **window)
        .values("tenant_id", "flow__flow_id")
        .annotate(
            name=Max("flow__name"),
            tenant_name=Max("tenant__name"),
            started=Count("id"),
            n_completed=Count("id", filter=not_handed_off & Q(status=SessionStatus.COMPLETED)),
            n_handed_off=Count("id", filter=Q(handed_off=True)),
            n_expired=Count("id", filter=not_handed_off & Q(status=SessionStatus.EXPIRED)),
            n_failed=Count("id", filter=not_handed_off & Q(status=SessionStatus.FAILED)),
            n_interrupted=Count("id", filter=not_handed_off & Q(status=SessionStatus.INTERRUPTED)),
            n_running=Count("id", filter=not_handed_off & Q(status=SessionStatus.WAITING)),
        )
        .order_by()
    )
    ai_kinds = (FlowEventKind.AI_ANSWERED, FlowEventKind.AI_FALLBACK)
    ai = (
        FlowEvent.objects.filter(**where, **window, kind__in=ai_kinds)
        .values("tenant_id", "flow__flow_id")
        .annotate(
            name=Max("flow__name"),
            tenant_name=Max("tenant__name"),
            ai_calls=Count("id"),
            ai_fallbacks=Count("id", filter=Q(kind=FlowEventKind.AI_FALLBACK)),
        )
        .order_by()
    )
    rows: dict[tuple[Any, str], dict[str, Any]] = {}
    for row in sessions:
        rows[(row["tenant_id"], row["flow__flow_id"])] = {
            "flow_id": row["flow__flow_id"],
            "name": row["name"],
            "tenant_id": row["tenant_id"],
            "tenant_name": row["tenant_name"],
            "started": row["started"],
            **{outcome: row[f"n_{outcome}"] for outcome in OUTCOMES},
            "ai_calls": 0,
            "ai_fallbacks": 0,
        }
    for row in ai:
        flow = rows.setdefault(
            (row["tenant_id"], row["flow__flow_id"]),
            {
                "flow_id": row["flow__flow_id"],
                "name": row["name"],
                "tenant_id": row["tenant_id"],
                "tenant_name": row["tenant_name"],
                "started": 0,
                **dict.fromkeys(OUTCOMES, 0),
            },
        )
        flow["ai_calls"] = row["ai_calls"]
        flow["ai_fallbacks"] = row["ai_fallbacks"]
    flows = sorted(rows.values(), key=lambda f: (f["tenant_name"], f["flow_id"]))
    for flow in flows:
        started = flow["started"]
        flow["completion_rate"] = round(flow["completed"] / started, 4) if started else None
    return flows


def _handoffs(where: dict[str, Any], since: datetime, now: datetime) -> dict[str, Any]:
    """Waits that a flow's handoff began in the window; the median of their first-reply
    times is read as the middle row (two for an even count) of the answered ones ordered by
    that time: a count and one offset query, never every row. A takeover (staff, the API,
    a reply from the WhatsApp Business app) is a person already there, not a wait: it would
    only pull the median towards zero."""
    started = Handoff.objects.filter(
        **where, source=HandoffSource.FLOW, started_at__gte=since, started_at__lte=now
    )
    counts = started.aggregate(
        started=Count("id"), answered=Count("id", filter=Q(first_reply_at__isnull=False))
    )
    answered = counts["answered"]
    median = None
    if answered:
        wait = ExpressionWrapper(
            F("first_reply_at") - F("started_at"), output_field=DurationField()
        )
        middle = (answered - 1) // 2
        take = 1 if answered % 2 else 2
        rows = list(
            started.filter(first_reply_at__isnull=False)
            .annotate(wait=wait)
            .order_by("wait", "pk")
            .values_list("started_at", "first_reply_at")[middle : middle + take]
        )
        seconds = [(reply - start).total_seconds() for start, reply in rows]
        median = round(sum(seconds) / len(seconds))
    return {
        "started": counts["started"],
        "answered": answered,
        "median_first_reply_seconds": median,
    }


def _failed_sends(where: dict[str, Any], window: dict[str, Any]) -> list[dict[str, Any]]:
    rows = (
        Message.objects.filter(
            **where, **window, direction=Direction.OUTBOUND, status=MessageStatus.FAILED
        )
        .values("error_code")
        .annotate(count=Count("id"))
        .order_by("-count", "error_code")
    )
    return [
        {
            "code": row["error_code"],
            "reason": explain(row["error_code"]).what,
            "count": row["count"],
        }
        for row in rows
    ]


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):  # some backends hand back ISO text
        return date.fromisoformat(value[:10])
    return value
