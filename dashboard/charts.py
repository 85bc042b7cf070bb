"""The dashboard's charts (Altair), sized by what they draw, apart from the pages that show them.

Streamlit stretches a chart to its container with Vega-Lite's ``fit``
autosize, where a chart's height is the *whole* chart's (titles, axis
labels, legends included): a chart with long labels can leave its marks a
few pixels. Every chart here fits the width only (``fit-x``), so its height
is its plot area's, set from the data: ``ROW_STEP`` pixels per row of a
discrete axis, never below ``MIN_PLOT_PX``. Charts render as SVG, so a
browser test can count the marks they draw.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

import altair as alt
import pandas as pd

from dashboard.drift import PSI_DRIFT, PSI_WATCH
from dashboard.time_axis import TimeAxis, display_ms, display_text

MIN_PLOT_PX = 100
ROW_STEP = 28
LABEL_LIMIT = 280
"""Pixels an axis label may take before it is cut: model versions and input names are read whole."""
PSI_FLOOR = 1e-4
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")
SVG = {"embedOptions": {"renderer": "svg"}}
SEVERITY_COLOURS = {"drift": "#d62728", "small change": "#ff7f0e", "no evidence": "#2ca02c", "no verdict": "#bbbbbb"}


def rows_height(rows: int, step: int = ROW_STEP) -> int:
    """The plot height of a chart with ``rows`` rows on its discrete axis."""
    return max(MIN_PLOT_PX, rows * step)


def sized(chart: alt.TopLevelMixin, height: int, title: str | None = None) -> alt.TopLevelMixin:
    """``chart`` with a plot area ``height`` pixels high, the container's width, SVG rendering."""
    properties = {"height": height, "autosize": FIT_WIDTH, "usermeta": SVG}
    if title:
        properties["title"] = title
    return chart.properties(**properties)


def _over_time(frame: pd.DataFrame, axis: TimeAxis, zone: str) -> pd.DataFrame:
    timed = frame.copy()
    timed["start"] = display_ms(timed["time"], zone)
    timed["end"] = timed["start"] + axis.step_s * 1_000
    timed["when"] = display_text(timed["time"], zone)
    return timed


def wall_clock(moment: datetime, zone: str) -> alt.DateTime:
    """``moment``'s wall-clock time in ``zone`` as a Vega-Lite date on the UTC scales.

    A scale domain of plain milliseconds draws line marks at x = 0 (Vega-Lite
    6.4); a date object places every mark.
    """
    local = pd.Timestamp(moment).tz_convert(zone)
    return alt.DateTime(year=local.year, month=local.month, date=local.day, hours=local.hour, minutes=local.minute,
                        seconds=local.second, utc=True)


def time_x(axis: TimeAxis, zone: str, field: str = "start") -> alt.X:
    """The x channel of a chart over time: the axis's span on a UTC scale, 24-hour labels, the zone named."""
    domain = [wall_clock(axis.start, zone), wall_clock(axis.end, zone)]
    return alt.X(f"{field}:T", title=f"time ({zone}, {axis.bucket} buckets)",
                 scale=alt.Scale(type="utc", domain=domain),
                 axis=alt.Axis(format=axis.label_format, labelOverlap=True))


def volume_bars(volume: pd.DataFrame, axis: TimeAxis, zone: str, count: str) -> alt.TopLevelMixin:
    """Requests or rows per bucket, stacked by model version; each bar spans its bucket."""
    data = _over_time(volume, axis, zone)
    chart = alt.Chart(data).mark_bar(clip=True).encode(
        x=time_x(axis, zone), x2="end:T", y=alt.Y(f"sum({count}):Q", title=count),
        color=alt.Color("model:N", title="model version",
                        legend=alt.Legend(orient="bottom", columns=2, labelLimit=LABEL_LIMIT)),
        tooltip=[alt.Tooltip("when:N", title="bucket from"), "model:N", alt.Tooltip(f"sum({count}):Q", title=count)])
    return sized(chart, 200, count.capitalize())


def latency_lines(percentiles: pd.DataFrame, axis: TimeAxis, zone: str) -> alt.TopLevelMixin:
    """p50/p95/p99 per bucket (drawn at the bucket's middle), total and inference."""
    data = _over_time(percentiles, axis, zone)
    data["middle"] = data["start"] + axis.step_s * 500
    chart = alt.Chart(data).mark_line(point=True, clip=True).encode(
        x=time_x(axis, zone, "middle"), y=alt.Y("ms:Q", title="ms"),
        color=alt.Color("percentile:N", legend=alt.Legend(orient="bottom")),
        strokeDash=alt.StrokeDash("measure:N", title="measure",
                                  legend=alt.Legend(orient="bottom", symbolType="stroke", symbolStrokeColor="black",
                                                    symbolStrokeWidth=2)),
        tooltip=[alt.Tooltip("when:N", title="bucket from"), "measure:N", "percentile:N",
                 alt.Tooltip("ms:Q", format=".2f")])
    return sized(chart, 220, "Latency percentiles")


def rate_bars(rates: pd.DataFrame, axis: TimeAxis, zone: str) -> alt.TopLevelMixin:
    """Error and fallback rates per bucket with traffic, side by side within the bucket."""
    data = _over_time(rates, axis, zone)
    half = axis.step_s * 500
    data.loc[data["rate"] == "fallback rate", "start"] += half
    data["end"] = data["start"] + half
    chart = alt.Chart(data).mark_bar(clip=True).encode(
        x=time_x(axis, zone), x2="end:T", y=alt.Y("share:Q", title="share of rows", axis=alt.Axis(format="%")),
        color=alt.Color("rate:N", scale=alt.Scale(domain=["error rate", "fallback rate"], range=["#d62728", "#ff7f0e"]),
                        legend=alt.Legend(orient="bottom")),
        tooltip=[alt.Tooltip("when:N", title="bucket from"), "rate:N", alt.Tooltip("share:Q", format=".2%"),
                 alt.Tooltip("rows:Q", title="rows in bucket")])
    return sized(chart, 160, "Error and fallback rates")


def share_bar(shares: pd.DataFrame) -> alt.TopLevelMixin:
    """Batch and single calls as shares of requests and of rows."""
    long = shares.melt(id_vars="kind", var_name="count", value_name="n")
    chart = alt.Chart(long).mark_bar().encode(
        y=alt.Y("count:N", title=None), x=alt.X("n:Q", stack="normalize", title="share", axis=alt.Axis(format="%")),
        color=alt.Color("kind:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["kind:N", "count:N", "n:Q"])
    return sized(chart, rows_height(2), "Batch and single calls")


def positive_rate_bars(volume: pd.DataFrame) -> alt.TopLevelMixin:
    """The predicted Oui share of each model version, one row each, the value printed."""
    data = volume.assign(rate_text=volume["positive_rate"].map(
        lambda r: "no prediction" if pd.isna(r) else f"{100 * r:.1f} %"))
    data["label_at"] = data["positive_rate"].fillna(0.0)
    base = alt.Chart(data).encode(y=alt.Y("model:N", title=None, sort=sorted(data["model"]),
                                          axis=alt.Axis(labelLimit=LABEL_LIMIT)))
    bars = base.mark_bar().encode(
        x=alt.X("positive_rate:Q", title="predicted Oui share", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", legend=None),
        tooltip=["model:N", "rows:Q", alt.Tooltip("positive_rate:Q", format=".1%")])
    # A version with only errors has no rate: its row says so instead of drawing nothing.
    labels = base.mark_text(align="left", dx=4).encode(x="label_at:Q", text="rate_text:N")
    return sized(alt.layer(bars, labels), rows_height(len(data)), "Positive rate on served traffic")


def probability_histogram(bins: pd.DataFrame, title: str, threshold: float | None,
                          reference: pd.DataFrame | None = None) -> alt.TopLevelMixin:
    """Share of one model version's rows per probability bin, with its threshold and, where the card has it, the
    out-of-fold distribution of training (black points at each bin's middle)."""
    bars = alt.Chart(bins).mark_bar(opacity=0.85).encode(
        x=alt.X("probability_from:Q", bin="binned", title="probability of leaving", scale=alt.Scale(domain=[0, 1])),
        x2="probability_to:Q", y=alt.Y("share:Q", title="share of rows", axis=alt.Axis(format="%")),
        tooltip=["probability_from:Q", "probability_to:Q", "rows:Q"])
    chart: alt.TopLevelMixin = bars
    if reference is not None:
        points = alt.Chart(reference.assign(middle=(reference["probability_from"] + reference["probability_to"]) / 2))
        chart = alt.layer(bars, points.mark_line(point=True, color="black", strokeWidth=1).encode(
            x="middle:Q", y="share:Q",
            tooltip=[alt.Tooltip("share:Q", title="card out-of-fold share", format=".1%"), "probability_from:Q"]))
    if threshold is not None:
        rule = alt.Chart(pd.DataFrame({"threshold": [threshold]})).mark_rule(
            strokeDash=[4, 3], color="black").encode(x="threshold:Q")
        chart = alt.layer(chart, rule)
    return sized(chart, 160, title)


def probability_ticks(table: pd.DataFrame) -> alt.TopLevelMixin:
    """The probabilities of the listed rows, one row per model version, coloured by label."""
    models = sorted(table["model"].unique())
    chart = alt.Chart(table).mark_tick(thickness=2).encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), title="probability of leaving"),
        y=alt.Y("model:N", title=None, sort=models, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        color=alt.Color("label:N", title="label", scale=alt.Scale(domain=["Oui", "Non"], range=["#d62728", "#1f77b4"])),
        tooltip=["request id:N", "model:N", alt.Tooltip("probability:Q", format=".4f")])
    return sized(chart, rows_height(len(models), 40), "Probabilities of the listed rows")


def psi_bars(summary: pd.DataFrame) -> alt.TopLevelMixin:
    """PSI per input on a log scale (small values stay visible next to a large one), verdict as colour."""
    # The y sort is by field: a sort by "-x" would follow the shown PSI, and the layer's rule has no input.
    data = summary.assign(shown=summary["PSI"].clip(lower=PSI_FLOOR), floor=PSI_FLOOR)
    top = max(1.0, float(data["shown"].max()))
    # A log scale has no 0: each bar starts at the floor of the scale, not at 0 (where it would not be drawn).
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("shown:Q", title="PSI (log scale)", scale=alt.Scale(type="log", domain=[PSI_FLOOR, top])),
        x2="floor:Q",
        y=alt.Y("input:N", sort=alt.EncodingSortField("shown", order="descending"), title=None,
                axis=alt.Axis(labelLimit=LABEL_LIMIT, labelOverlap=False)),
        color=alt.Color("verdict:N", scale=alt.Scale(domain=list(SEVERITY_COLOURS),
                                                     range=list(SEVERITY_COLOURS.values()))),
        tooltip=["input:N", "verdict:N", alt.Tooltip("PSI:Q", format=".4f"), alt.Tooltip("JS distance:Q", format=".4f"),
                 alt.Tooltip("adjusted p:Q", format=".2g")])
    limits = alt.Chart(pd.DataFrame({"shown": [PSI_WATCH, PSI_DRIFT]})).mark_rule(strokeDash=[4, 3]).encode(
        x="shown:Q")
    return sized(alt.layer(bars, limits), rows_height(len(data), 20), "PSI per input (size of the change)")


def reference_bars(feature: str, bins: Sequence[str], reference: Sequence[float],
                   live: Sequence[float]) -> alt.TopLevelMixin:
    """One input's live shares against its training reference, one row per bin."""
    data = pd.DataFrame({"bin": list(bins) * 2, "share": list(reference) + list(live),
                         "distribution": ["training reference"] * len(bins) + ["live"] * len(bins)})
    chart = alt.Chart(data).mark_bar().encode(
        y=alt.Y("bin:N", sort=list(bins), title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        yOffset="distribution:N",
        x=alt.X("share:Q", axis=alt.Axis(format="%"), title="share of rows"), color="distribution:N",
        tooltip=["bin:N", "distribution:N", alt.Tooltip("share:Q", format=".1%")])
    return sized(chart, rows_height(len(bins), 24), feature)


def daily_trend(trend: pd.DataFrame) -> alt.TopLevelMixin:
    """The worst PSI and JS distance of each day (a UTC day, as the SQL counts it) with enough rows."""
    data = trend.assign(day_ms=display_ms(trend["day"], "UTC"))
    data["date"] = pd.to_datetime(trend["day"], utc=True).dt.strftime("%Y-%m-%d UTC")
    lines = alt.Chart(data).transform_fold(["worst_psi", "worst_js"], as_=["score", "value"]).mark_line(
        point=True).encode(x=alt.X("day_ms:T", title="day (UTC)", scale=alt.Scale(type="utc"),
                                   axis=alt.Axis(format="%d %b", tickCount="day")),
                           y=alt.Y("value:Q", title="worst score of the day"), color="score:N",
                           tooltip=["date:N", "feature:N", "rows:Q", "drifting:Q",
                                    alt.Tooltip("value:Q", format=".4f")])
    return sized(lines, 160, "Worst PSI and JS distance per day")


CALIBRATION_COLOURS = {"live": "#d62728", "card (out-of-fold)": "#1f77b4"}


def calibration_curve(curves: pd.DataFrame, title: str) -> alt.TopLevelMixin:
    """Observed leaving rate against mean predicted probability per bin, live and the card's; diagonal: perfect."""
    diagonal = alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]})).mark_line(
        strokeDash=[4, 3], color="#888888").encode(x="x:Q", y="y:Q")
    curve = alt.Chart(curves).mark_line(point=True).encode(
        x=alt.X("mean_predicted:Q", title="mean predicted probability", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("observed_rate:Q", title="observed leaving rate", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("curve:N", title=None, scale=alt.Scale(domain=list(CALIBRATION_COLOURS),
                                                               range=list(CALIBRATION_COLOURS.values())),
                        legend=alt.Legend(orient="bottom")),
        tooltip=["curve:N", alt.Tooltip("lower:Q", title="bin from"), alt.Tooltip("upper:Q", title="bin to"),
                 "count:Q", alt.Tooltip("mean_predicted:Q", format=".3f"),
                 alt.Tooltip("observed_rate:Q", format=".3f")])
    return sized(alt.layer(diagonal, curve), 220, title)


def interval_chart(estimates: pd.DataFrame, metric: str) -> alt.TopLevelMixin:
    """One metric per row (model version and which predictions) with its bootstrap 95 % interval."""
    rows = estimates["row"].tolist()
    base = alt.Chart(estimates).encode(y=alt.Y("row:N", title=None, sort=rows, axis=alt.Axis(labelLimit=LABEL_LIMIT)))
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("low:Q", title=f"{metric} (95 % interval)", scale=alt.Scale(domain=[0, 1])), x2="high:Q")
    points = base.mark_point(filled=True, size=60).encode(
        x="value:Q", color=alt.Color("which:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["row:N", alt.Tooltip("value:Q", format=".3f"), alt.Tooltip("low:Q", format=".3f"),
                 alt.Tooltip("high:Q", format=".3f"), "labelled:Q"])
    return sized(alt.layer(bars, points), rows_height(len(rows)), f"{metric} on labelled predictions")


FAIRNESS_COLOURS = {"compared": "#1f77b4", "below four-fifths": "#d62728", "too small": "#bbbbbb"}


def group_rates(table: pd.DataFrame, title: str) -> alt.TopLevelMixin:
    """Positive-prediction rate per group, coloured by the four-fifths verdict; dashed: 0.8 x the highest."""
    data = table.assign(rate_text=table["positive rate"].map(lambda r: f"{100 * r:.1f} %"))
    groups = data["group"].tolist()
    base = alt.Chart(data).encode(y=alt.Y("group:N", title=None, sort=groups, axis=alt.Axis(labelLimit=LABEL_LIMIT)))
    bars = base.mark_bar().encode(
        x=alt.X("positive rate:Q", title="predicted Oui share", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, max(0.05, float(data["positive rate"].max()) * 1.25)])),
        color=alt.Color("verdict:N", title=None, scale=alt.Scale(domain=list(FAIRNESS_COLOURS),
                                                                 range=list(FAIRNESS_COLOURS.values())),
                        legend=alt.Legend(orient="bottom")),
        tooltip=["group:N", "rows:Q", alt.Tooltip("positive rate:Q", format=".1%"),
                 alt.Tooltip("ratio to highest:Q", format=".2f"), "verdict:N"])
    labels = base.mark_text(align="left", dx=4).encode(x="positive rate:Q", text="rate_text:N")
    layers = [bars, labels]
    compared = data.loc[data["verdict"] != "too small", "positive rate"]
    if not compared.empty:
        limit = pd.DataFrame({"limit": [0.8 * float(compared.max())]})
        layers.append(alt.Chart(limit).mark_rule(strokeDash=[4, 3], color="black").encode(x="limit:Q"))
    return sized(alt.layer(*layers), rows_height(len(groups)), title)


def agreement_bars(table: pd.DataFrame) -> alt.TopLevelMixin:
    """Each model version's agreement with the model that served, on the same traced inputs."""
    data = table.assign(text=table["agreement"].map(lambda r: f"{100 * r:.1f} %"))
    versions = data["model"].tolist()
    base = alt.Chart(data).encode(y=alt.Y("model:N", title=None, sort=versions,
                                          axis=alt.Axis(labelLimit=LABEL_LIMIT)))
    bars = base.mark_bar().encode(
        x=alt.X("agreement:Q", title="agreement with the model that served", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("model:N", legend=None),
        tooltip=["model:N", alt.Tooltip("agreement:Q", format=".1%"), alt.Tooltip("kappa:Q", format=".3f")])
    labels = base.mark_text(align="left", dx=4).encode(x="agreement:Q", text="text:N")
    return sized(alt.layer(bars, labels), rows_height(len(versions)), "Agreement on identical traffic")


WATERFALL_COLOURS = {"base": "#7f7f7f", "up": "#d62728", "down": "#1f77b4", "others": "#9467bd", "output": "#2f2f2f"}


def waterfall(steps: pd.DataFrame, scale: str, marks: pd.DataFrame) -> alt.TopLevelMixin:
    """One answer's explanation: the base value, each field's push (red: towards leaving), the output.

    ``marks``: vertical rules (``name``, ``at``, ``dash``): the stored probability and the threshold on ``scale``.
    """
    order = list(steps["step"])
    levels_only = steps["kind"].isin(["base", "output"])
    texts = [f"{c:.3f}" if level else f"{c:+.3f}" for c, level in zip(steps["contribution"], levels_only)]
    data = steps.assign(text=texts, label_at=steps[["start", "end"]].max(axis=1))
    base = alt.Chart(data).encode(y=alt.Y("step:N", sort=order, title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)))
    palette = alt.Scale(domain=list(WATERFALL_COLOURS), range=list(WATERFALL_COLOURS.values()))
    colour = alt.Color("kind:N", legend=None, scale=palette)
    tooltip = ["step:N", alt.Tooltip("contribution:Q", format="+.6f"), alt.Tooltip("start:Q", format=".6f"),
               alt.Tooltip("end:Q", format=".6f")]
    pushes = base.transform_filter(alt.FieldOneOfPredicate("kind", ["up", "down", "others"]))
    bars = pushes.mark_bar(height=ROW_STEP - 8).encode(
        x=alt.X("start:Q", title=scale, scale=alt.Scale(zero=False)), x2="end:Q", color=colour, tooltip=tooltip)
    # The base value and the output are levels: a diamond where each stands.
    levels = base.transform_filter(alt.FieldOneOfPredicate("kind", ["base", "output"])).mark_point(
        shape="diamond", filled=True, size=160, opacity=1).encode(x="end:Q", color=colour, tooltip=tooltip)
    labels = base.mark_text(align="left", dx=8, fontSize=11).encode(x="label_at:Q", text="text:N")
    rules = alt.Chart(marks).mark_rule(strokeWidth=2).encode(
        x="at:Q", strokeDash=alt.StrokeDash("name:N", title=None, legend=alt.Legend(orient="bottom"),
                                            scale=alt.Scale(range=[[1, 0], [5, 3]])),
        tooltip=["name:N", alt.Tooltip("at:Q", format=".6f")])
    return sized(alt.layer(bars, levels, labels, rules), rows_height(len(data)), f"Why this answer, on the {scale}")


def driver_bars(table: pd.DataFrame, title: str, scale: str) -> alt.TopLevelMixin:
    """Mean |contribution| per field, served traffic beside the card's training rows where it has them."""
    fields = list(dict.fromkeys(table["field"]))
    chart = alt.Chart(table).mark_bar().encode(
        y=alt.Y("field:N", sort=fields, title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        yOffset=alt.YOffset("source:N", sort=sorted(table["source"].unique(), reverse=True)),
        x=alt.X("mean_abs:Q", title=f"mean |contribution|, {scale}"),
        color=alt.Color("source:N", title=None, legend=alt.Legend(orient="top", direction="vertical")),
        tooltip=["field:N", "source:N", alt.Tooltip("mean_abs:Q", format=".4f")])
    return sized(chart, rows_height(len(fields), 2 * ROW_STEP if table["source"].nunique() > 1 else ROW_STEP), title)
