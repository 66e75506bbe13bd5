"""Chart geometry for server-side SVG (the dashboard): numbers in, coordinates and labels out.

Pure Python, no Django: the templates under `templates/admin/dashboard/` draw what these
functions compute, so the SVG is escaped by the template engine and styled only by classes
(`conversations/static/conversations/dashboard.css`; the Content-Security-Policy refuses
inline styles). Hand-written rather than a charting library: pygal writes a `<style>` element
and inline scripts into its SVG, and leather has neither per-bar tooltips nor CSS classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

# The drawing's own units (the SVG scales to the width of its box).
WIDTH, HEIGHT = 960, 280
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 14, 40
# Above this many days the two series are lines (bars would be a pixel wide).
MAX_BAR_DAYS = 62
MAX_BAR_WIDTH = 40  # a day's bar on a chart of a few days
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Day:
    """One day of the chart: its hover area (the whole column) with its tooltip, its two bars
    (bar mode) or its two points (line mode)."""

    title: str
    x: float
    width: float
    inbound: Bar
    outbound: Bar
    point_in: tuple[float, float]
    point_out: tuple[float, float]


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass
class MessagesChart:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    right_edge: int = WIDTH - RIGHT
    baseline: int = HEIGHT - BOTTOM
    mode: str = "bars"  # or "lines"
    days: list[Day] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    line_in: str = ""  # SVG polyline points
    line_out: str = ""
    show_points: bool = False
    description: str = ""

    @property
    def plot_height(self) -> int:
        return self.baseline - self.top

    @property
    def x_title_y(self) -> int:
        return self.height - 4

    @property
    def y_title_x(self) -> int:
        return 14

    @property
    def y_title_y(self) -> float:
        return (self.top + self.baseline) / 2


def nice_ceiling(value: int, ticks: int = 4) -> tuple[int, int]:
    """The axis top and step for values up to `value`: a step of 1, 2 or 5 times a power of
    ten, about `ticks` steps, never below 1."""
    if value <= ticks:
        return ticks, 1
    raw = value / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return int(step * math.ceil(value / step)), int(step)


def day_label(day: date, *, with_year: bool = False) -> str:
    label = f"{day.day} {MONTHS[day.month - 1]}"
    return f"{label} {day.year}" if with_year else label


def messages_chart(rows: Sequence[dict]) -> MessagesChart:
    """`rows`: one per day, oldest first, each `{"date", "inbound", "outbound"}` (the stats'
    `messages`). Bars for up to two months, lines beyond; every day has a tooltip."""
    chart = MessagesChart()
    count = len(rows)
    plot_width = chart.right_edge - chart.left
    plot_height = chart.baseline - chart.top
    top_value = max([max(r["inbound"], r["outbound"]) for r in rows] + [0])
    axis_top, step = nice_ceiling(top_value)
    chart.y_ticks = [
        Tick(position=chart.baseline - plot_height * value / axis_top, label=f"{value:,}")
        for value in range(0, axis_top + 1, step)
    ]
    chart.mode = "bars" if count <= MAX_BAR_DAYS else "lines"
    chart.show_points = chart.mode == "lines" and count <= 120
    slot = plot_width / max(count, 1)
    bar_width = min(slot * 0.75 / 2, MAX_BAR_WIDTH)
    gap = slot - 2 * bar_width  # the space around a day's pair of bars

    def y_of(value: int) -> float:
        return chart.baseline - plot_height * value / axis_top

    points_in, points_out = [], []
    for index, row in enumerate(rows):
        x = chart.left + index * slot
        middle = x + slot / 2
        inbound, outbound = row["inbound"], row["outbound"]
        title = f"{day_label(row['date'], with_year=True)}: {inbound:,} in · {outbound:,} out"
        chart.days.append(
            Day(
                title=title,
                x=round(x, 2),
                width=round(slot, 2),
                inbound=Bar(
                    x=round(x + gap / 2, 2),
                    y=round(y_of(inbound), 2),
                    width=round(bar_width, 2),
                    height=round(chart.baseline - y_of(inbound), 2),
                ),
                outbound=Bar(
                    x=round(x + gap / 2 + bar_width, 2),
                    y=round(y_of(outbound), 2),
                    width=round(bar_width, 2),
                    height=round(chart.baseline - y_of(outbound), 2),
                ),
                point_in=(round(middle, 2), round(y_of(inbound), 2)),
                point_out=(round(middle, 2), round(y_of(outbound), 2)),
            )
        )
        points_in.append(f"{middle:.2f},{y_of(inbound):.2f}")
        points_out.append(f"{middle:.2f},{y_of(outbound):.2f}")
    chart.line_in = " ".join(points_in)
    chart.line_out = " ".join(points_out)
    chart.x_ticks = _x_ticks(rows, chart.left, slot)
    total_in = sum(r["inbound"] for r in rows)
    total_out = sum(r["outbound"] for r in rows)
    chart.description = (
        f"Messages per day over {count} day{'s' if count != 1 else ''}: "
        f"{total_in:,} in, {total_out:,} out."
    )
    return chart


def _x_ticks(rows: Sequence[dict], left: float, slot: float) -> list[Tick]:
    """Date labels that never crowd: every day up to two weeks, then every n-th day counted
    back from today, and beyond three months the first day of each month."""
    count = len(rows)
    if not count:
        return []
    if count == 1:
        return [Tick(left + slot / 2, day_label(rows[0]["date"], with_year=True))]
    if count > 92:
        ticks = []
        for index, row in enumerate(rows):
            day = row["date"]
            if day.day == 1:
                label = MONTHS[day.month - 1] + (f" {day.year}" if day.month == 1 else "")
                ticks.append(Tick(round(left + index * slot + slot / 2, 2), label))
        return ticks
    every = max(1, math.ceil(count / 10))
    return [
        Tick(round(left + index * slot + slot / 2, 2), day_label(rows[index]["date"]))
        for index in range(count - 1, -1, -every)
    ][::-1]


@dataclass(frozen=True)
class Segment:
    css: str
    label: str
    count: int
    x: float
    width: float


def outcome_bar(counts: Sequence[tuple[str, str, int]], width: int = 200) -> list[Segment]:
    """A stacked bar of a flow's outcomes: `counts` are (css class, label, count) in the
    order drawn; segments of zero are left out."""
    total = sum(count for _, _, count in counts)
    segments: list[Segment] = []
    x = 0.0
    for css, label, count in counts:
        if not count or not total:
            continue
        part = width * count / total
        segments.append(
            Segment(css=css, label=label, count=count, x=round(x, 2), width=round(part, 2))
        )
        x += part
    return segments
