"""The dashboard's chart geometry (`conversations.charts`): no database, hand-computed."""

from datetime import date, timedelta

from conversations.charts import (
    BOTTOM,
    HEIGHT,
    LEFT,
    MAX_BAR_WIDTH,
    RIGHT,
    TOP,
    WIDTH,
    messages_chart,
    nice_ceiling,
    outcome_bar,
)


def _rows(days: int, last: date = date(2026, 3, 10), value=lambda i: (i, 2 * i)):
    return [
        {
            "date": last - timedelta(days=days - 1 - i),
            "inbound": value(i)[0],
            "outbound": value(i)[1],
        }
        for i in range(days)
    ]


def test_the_axis_top_is_a_round_number_above_the_highest_value():
    assert nice_ceiling(0) == (4, 1)
    assert nice_ceiling(3) == (4, 1)
    assert nice_ceiling(7) == (8, 2)
    assert nice_ceiling(12) == (15, 5)
    assert nice_ceiling(87) == (100, 50)
    assert nice_ceiling(1234) == (1500, 500)


def test_a_week_is_drawn_as_bars_scaled_to_the_axis():
    chart = messages_chart(_rows(7))  # highest value: 12 outbound on the last day
    assert chart.mode == "bars" and len(chart.days) == 7
    assert [t.label for t in chart.y_ticks] == ["0", "5", "10", "15"]
    plot_height = HEIGHT - BOTTOM - TOP
    last = chart.days[-1]
    assert last.outbound.height == round(plot_height * 12 / 15, 2)
    assert last.inbound.height == round(plot_height * 6 / 15, 2)
    assert last.outbound.y + last.outbound.height == HEIGHT - BOTTOM
    assert chart.days[0].inbound.height == 0
    assert last.title == "10 Mar 2026: 6 in · 12 out"
    assert [t.label for t in chart.x_ticks] == [
        "4 Mar",
        "5 Mar",
        "6 Mar",
        "7 Mar",
        "8 Mar",
        "9 Mar",
        "10 Mar",
    ]
    # the columns tile the plot from the left edge to the right one
    assert chart.days[0].x == LEFT
    assert round(chart.days[-1].x + chart.days[-1].width, 2) == WIDTH - RIGHT


def test_one_day_is_one_labelled_pair_of_bars_of_reasonable_width():
    chart = messages_chart(_rows(1, value=lambda i: (3, 5)))
    assert len(chart.days) == 1 and chart.days[0].inbound.width == MAX_BAR_WIDTH
    assert [t.label for t in chart.x_ticks] == ["10 Mar 2026"]
    assert chart.description == "Messages per day over 1 day: 3 in, 5 out."


def test_a_year_is_drawn_as_lines_labelled_by_month():
    chart = messages_chart(_rows(365, last=date(2026, 12, 2)))
    assert chart.mode == "lines" and not chart.show_points
    assert len(chart.days) == 365 and len(chart.line_in.split()) == 365
    assert [t.label for t in chart.x_ticks] == [
        "Jan 2026",
        "Feb",
        "Mar",
        "Apr",
        "May",
        "Jun",
        "Jul",
        "Aug",
        "Sep",
        "Oct",
        "Nov",
        "Dec",
    ]


def test_ninety_days_get_at_most_ten_date_labels_ending_today():
    chart = messages_chart(_rows(90))
    assert chart.mode == "lines" and chart.show_points
    assert len(chart.x_ticks) <= 10 and chart.x_ticks[-1].label == "10 Mar"


def test_an_outcome_bar_splits_its_width_by_count_and_leaves_out_zeros():
    segments = outcome_bar([("a", "A", 1), ("b", "B", 0), ("c", "C", 3)], width=200)
    assert [(s.css, s.x, s.width) for s in segments] == [("a", 0, 50.0), ("c", 50.0, 150.0)]
    assert outcome_bar([("a", "A", 0)]) == []
