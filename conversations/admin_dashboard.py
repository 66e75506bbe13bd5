"""The admin's first page (`/admin/`): the dashboard of a tenant, or of every tenant for
platform staff, over a chosen period.

- Whose numbers: a member sees a tenant of theirs (`?tenant=<id>`; without it the first by
  name); platform staff see every tenant together unless they pick one. A tenant the user
  cannot see is a 404, like one that does not exist.
- The period: `?days=` 1..365 (the picker offers 1, 7, 30, 90 and 365; default 30); anything
  else is a 400 that says so.
- The numbers are `conversations.services.stats` (the stats API's), so the page and the API
  never disagree; the page costs a fixed number of queries whatever the history holds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from conversations import charts
from conversations.services.stats import (
    DEFAULT_DAYS,
    MAX_DAYS,
    MIN_DAYS,
    platform_stats,
    tenant_stats,
)
from tenants import access
from tenants.access import Action

PERIODS = ((1, "Today"), (7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "12 months"))

# The flow outcomes in the order the table and the bars show them: (key, label, css class).
OUTCOME_COLUMNS = (
    ("completed", "Completed", "seg-completed"),
    ("handed_off", "Handed off", "seg-handed-off"),
    ("expired", "Expired", "seg-expired"),
    ("failed", "Failed", "seg-failed"),
    ("interrupted", "Interrupted", "seg-interrupted"),
    ("running", "Still running", "seg-running"),
)


def duration_text(seconds: float | None) -> str:
    """`2 h 14 min`, `45 s`, `3 d 4 h`: the two largest units, for people."""
    if seconds is None:
        return "—"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def _days(request: HttpRequest) -> int | None:
    raw = request.GET.get("days", "")
    if raw == "":
        return DEFAULT_DAYS
    if not (raw.isascii() and raw.isdigit()):
        return None
    days = int(raw)
    return days if MIN_DAYS <= days <= MAX_DAYS else None


def dashboard_view(
    request: HttpRequest, *, admin_site: Any, extra_context: dict | None = None
) -> HttpResponse:
    days = _days(request)
    if days is None:
        return HttpResponseBadRequest(
            f"days must be a whole number from {MIN_DAYS} to {MAX_DAYS}.",
            content_type="text/plain; charset=utf-8",
        )
    platform = access.is_platform_staff(request.user)
    tenants = list(
        access.tenants_where(request.user, Action.VIEW).order_by("name", "pk").only("pk", "name")
    )
    chosen = None
    raw_tenant = request.GET.get("tenant", "")
    if raw_tenant:
        try:
            wanted = uuid.UUID(raw_tenant)
        except ValueError:
            raise Http404("No such tenant.") from None
        chosen = next((t for t in tenants if t.pk == wanted), None)
        if chosen is None:
            raise Http404("No such tenant.")
    elif not platform and tenants:
        chosen = tenants[0]

    now = timezone.now()
    if chosen is not None:
        stats = tenant_stats(tenant=chosen, days=days, now=now)
    elif platform:
        stats = platform_stats(days=days, now=now)
    else:
        stats = None  # a member whose tenants are all switched off

    context = {
        **admin_site.each_context(request),
        "title": "Dashboard",
        "subtitle": None,
        "app_list": admin_site.get_app_list(request),
        "tenants": tenants,
        "tenant": chosen,
        "platform": platform,
        "platform_wide": chosen is None and platform,
        "show_tenant_picker": platform or len(tenants) > 1,
        "days": days,
        "periods": [
            {"days": value, "label": label, "selected": value == days} for value, label in PERIODS
        ],
        "stats": stats,
        **(_display(stats, now, platform_wide=chosen is None) if stats else {}),
        "inbox_url": reverse("admin:inbox") + "?needs_human=1",
        "can_manage": chosen is not None and access.can(request.user, Action.MANAGE, chosen),
        **(extra_context or {}),
    }
    request.current_app = admin_site.name
    return TemplateResponse(request, "admin/dashboard/index.html", context)


def _display(stats: dict, now: datetime, *, platform_wide: bool) -> dict[str, Any]:
    """What the template shows beyond the raw numbers: the chart, the waits in words, the
    flows with their stacked bars."""
    threads = stats["threads"]
    oldest: datetime | None = threads["oldest_waiting_since"]
    flows = []
    for flow in stats["flows"]:
        counts = [(css, label, flow[key]) for key, label, css in OUTCOME_COLUMNS]
        flows.append(
            {
                **flow,
                "outcomes": [
                    {"key": key, "label": label, "count": flow[key]}
                    for key, label, _ in OUTCOME_COLUMNS
                ],
                "segments": charts.outcome_bar(counts),
                "completion_percent": None
                if flow["completion_rate"] is None
                else round(flow["completion_rate"] * 100),
            }
        )
    handoffs = stats["handoffs"]
    totals = stats["message_totals"]
    failed = stats["failed_sends"]
    return {
        "chart": charts.messages_chart(stats["messages"]),
        "has_messages": bool(totals["inbound"] or totals["outbound"]),
        "oldest_wait": duration_text((now - oldest).total_seconds()) if oldest else None,
        "median_reply": duration_text(handoffs["median_first_reply_seconds"])
        if handoffs["median_first_reply_seconds"] is not None
        else None,
        "flows": flows,
        "outcome_columns": OUTCOME_COLUMNS,
        "failed_total": sum(row["count"] for row in failed),
        "period_start": stats["since"].date(),
        "period_end": stats["until"].astimezone(UTC).date(),
        "show_tenant_column": platform_wide,
    }
