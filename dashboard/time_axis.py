"""Time on the dashboard's charts: which span an axis covers, how wide a bucket is, and times in a display zone.

A chart over time covers the chosen window, in buckets sized so that it
holds at most ``MAX_BUCKETS`` bars. When all the window's traffic falls in a
handful of those buckets (a burst of demo traffic in a 24-hour window), the
axis zooms on the traffic's own span, in finer buckets, and says so.

Vega-Lite formats times in the browser's zone: the charts receive
wall-clock times of the display zone encoded as UTC instants, on UTC scales,
so an axis reads ``23:15`` for 23:15 in that zone whatever the browser's.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd

STEPS_S = (1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 2 * 3_600, 3 * 3_600, 6 * 3_600, 12 * 3_600, 86_400,
           7 * 86_400)
MAX_BUCKETS = 60
"""At most this many bars on a chart: each stays wide enough to see and to point at."""
MIN_FILLED_BUCKETS = 6
"""Traffic that would fill fewer buckets than this is shown on its own span (zoomed)."""
EPOCH = pd.Timestamp(0, tz="UTC")


def step_for(span: timedelta) -> int:
    """The narrowest bucket (seconds) that cuts ``span`` into at most ``MAX_BUCKETS``."""
    for step in STEPS_S:
        if span.total_seconds() / step <= MAX_BUCKETS:
            return step
    return STEPS_S[-1]


def _floor(moment: datetime, step_s: int) -> datetime:
    seconds = int(moment.timestamp()) // step_s * step_s
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@dataclass(frozen=True)
class TimeAxis:
    """The span a chart over time covers and its bucket width."""

    start: datetime
    end: datetime
    step_s: int
    zoomed: bool = False

    @property
    def bucket(self) -> str:
        """The bucket width in words (``10 s``, ``15 min``, ``3 h``, ``1 day``)."""
        if self.step_s < 60:
            return f"{self.step_s} s"
        if self.step_s < 3_600:
            return f"{self.step_s // 60} min"
        if self.step_s < 86_400:
            return f"{self.step_s // 3_600} h"
        return f"{self.step_s // 86_400} day" + ("s" if self.step_s > 86_400 else "")

    @property
    def label_format(self) -> str:
        """The axis label format, 24-hour: the date joins the hour when the span passes a day."""
        if self.step_s >= 86_400:
            return "%d %b"
        if self.end - self.start > timedelta(hours=24):
            return "%d %b %H:%M"
        return "%H:%M:%S" if self.step_s < 60 else "%H:%M"


def time_axis(start: datetime | None, end: datetime | None, first: datetime, last: datetime) -> TimeAxis:
    """The axis of a window ``[start, end)`` (``None``: open) whose traffic runs from ``first`` to ``last``."""
    low = start or _floor(first, 60)
    high = end or max(last, low) + timedelta(minutes=1)
    step = step_for(max(high - low, timedelta(minutes=1)))
    traffic = last - first
    if traffic.total_seconds() < MIN_FILLED_BUCKETS * step:
        fine = step_for(max(traffic, timedelta(seconds=STEPS_S[0] * MIN_FILLED_BUCKETS)))
        if fine < step:
            zoom_start = _floor(first, fine)
            return TimeAxis(zoom_start, _floor(last, fine) + timedelta(seconds=fine), fine, zoomed=True)
    return TimeAxis(low, high, step)


def display_ms(times: pd.Series | datetime, zone: str) -> pd.Series | int:
    """Milliseconds of the wall-clock time in ``zone``, as if it were UTC (what the UTC scales show).

    A float column: Streamlit ships frames to the browser as Arrow, where an
    int64 column arrives as BigInt, which Vega's time scales cannot place.
    """
    if isinstance(times, datetime):
        stamp = pd.Timestamp(times)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
        wall = stamp.tz_convert(zone).tz_localize(None).tz_localize("UTC")
        return int((wall - EPOCH) // pd.Timedelta(milliseconds=1))
    wall = pd.to_datetime(times, utc=True).dt.tz_convert(zone).dt.tz_localize(None).dt.tz_localize("UTC")
    return ((wall - EPOCH) // pd.Timedelta(milliseconds=1)).astype("float64")


def display_text(times: pd.Series, zone: str) -> pd.Series:
    """Times as ``2026-12-07 23:15:02 UTC`` in ``zone`` (24-hour), for tooltips and tables."""
    local = pd.to_datetime(times, utc=True).dt.tz_convert(zone)
    return local.dt.strftime("%Y-%m-%d %H:%M:%S") + f" {zone}"
