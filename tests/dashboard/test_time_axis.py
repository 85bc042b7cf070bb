"""Charts over time: the axis covers the window, buckets keep bars readable, times shown in 24 hours with a zone."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from dashboard.time_axis import MAX_BUCKETS, display_ms, display_text, step_for, time_axis

NOW = datetime(2026, 12, 7, 23, 15, tzinfo=timezone.utc)


def test_the_axis_covers_the_window_when_traffic_fills_it() -> None:
    start = NOW - timedelta(hours=24)
    axis = time_axis(start, NOW, start + timedelta(minutes=5), NOW - timedelta(minutes=5))
    assert (axis.start, axis.end, axis.zoomed) == (start, NOW, False)
    assert axis.step_s == 1_800 and 86_400 / axis.step_s <= MAX_BUCKETS  # 48 bars of 30 min, not 1,440 dots
    assert axis.label_format == "%H:%M" and axis.bucket == "30 min"


def test_a_brief_burst_in_a_wide_window_is_shown_on_its_own_span() -> None:
    first = NOW - timedelta(minutes=3)
    axis = time_axis(NOW - timedelta(hours=24), NOW, first, NOW)
    assert axis.zoomed and axis.step_s == 5  # 36 bars of 5 s over 3 minutes
    assert axis.start <= first and axis.end > NOW and (axis.end - axis.start).total_seconds() / 5 <= MAX_BUCKETS
    assert axis.label_format == "%H:%M:%S"
    # 13 seconds of demo traffic: 1 s buckets, not the 1 or 2 bars of 10 s buckets
    assert time_axis(NOW - timedelta(hours=24), NOW, NOW - timedelta(seconds=13), NOW).step_s == 1


def test_an_open_window_spans_its_traffic_and_long_spans_show_the_date() -> None:
    axis = time_axis(None, None, NOW - timedelta(days=10), NOW)
    assert axis.start <= NOW - timedelta(days=10) and axis.end > NOW
    assert axis.step_s == 6 * 3_600 and axis.label_format == "%d %b %H:%M"
    assert step_for(timedelta(days=400)) == 7 * 86_400


def test_times_are_shown_as_wall_clock_time_of_the_display_zone() -> None:
    times = pd.Series(pd.to_datetime(["2026-12-07 23:15:00"], utc=True))
    # 23:15 UTC is drawn at 23:15 on a UTC scale (not 11:15), and at 00:15 for Paris (UTC+1 in December).
    assert display_ms(times, "UTC").iloc[0] == int(NOW.timestamp() * 1000)
    assert display_ms(times, "Europe/Paris").iloc[0] == int((NOW + timedelta(hours=1)).timestamp() * 1000)
    assert display_ms(NOW, "UTC") == int(NOW.timestamp() * 1000)
    assert display_text(times, "Europe/Paris").iloc[0] == "2026-12-08 00:15:00 Europe/Paris"
