"""The dashboard's read queries over the trace: aggregates computed by the database.

Every function takes a read-only engine and a :class:`Window` and returns a
small pandas frame of aggregates (never the trace table itself), with the
same code on PostgreSQL and SQLite. Where they differ:

- time buckets: epoch seconds floored to a step (``extract(epoch ...)`` on
  PostgreSQL, ``strftime('%s', ...)`` on SQLite);
- latency percentiles: ``percentile_cont`` on PostgreSQL; on SQLite, which
  has no percentile function, counts in fixed latency buckets computed in
  SQL, interpolated within their bucket (approximate);
- the inputs document: ``json_each_text`` on PostgreSQL, ``json_each`` on SQLite.

Counting: a *request* is an HTTP call (a batch counts once, by its row with
``batch_index`` 0); a *row* is a trace. An *error* is a trace with status
``error`` and no prediction; a *fallback* a trace served by the default model
after a failure.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from attrition.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from persistence.database.schema import prediction_traces as traces

LATENCY_EDGES_MS = (0.0, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
                    1_000, 2_000, 5_000, 10_000, 30_000, 60_000)
"""Fixed latency buckets (ms) for backends without a percentile function; the last one is open-ended."""

PERCENTILES = (0.5, 0.95, 0.99)
PROBABILITY_BINS = 20
TIME_STEPS_S = (60, 300, 900, 3_600, 3 * 3_600, 6 * 3_600, 86_400, 7 * 86_400)
"""Bucket widths for charts over time, the narrowest that keeps at most ``MAX_TIME_BUCKETS`` points."""
MAX_TIME_BUCKETS = 100
DAY_S = 86_400

TRACE_COLUMNS = ("request_id", "received_at", "endpoint", "requested_model", "employee_id", "batch_index",
                 "model_name", "model_version", "model_sha256", "service_version", "prediction", "probability",
                 "threshold", "fallback", "status", "error", "inference_ms", "total_ms", "created_at")
"""The columns of one trace the audit view shows (with ``inputs``), selected by name."""

LISTED_COLUMNS = ("request_id", "received_at", "endpoint", "employee_id", "model_name", "model_version",
                  "prediction", "probability", "threshold", "fallback", "status", "total_ms")
"""The columns of the Predictions page's table and CSV export."""


@dataclass(frozen=True)
class Window:
    """A period of ``received_at``: ``[start, end)``; ``None`` leaves that side open."""

    start: datetime | None = None
    end: datetime | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions selecting the traces received in the window."""
        conditions = []
        if self.start is not None:
            conditions.append(traces.c.received_at >= self.start)
        if self.end is not None:
            conditions.append(traces.c.received_at < self.end)
        return conditions


@dataclass(frozen=True)
class PredictionFilter:
    """What the Predictions page narrows the traces to, beyond the window."""

    model_names: tuple[str, ...] = ()
    model_versions: tuple[str, ...] = ()
    prediction: int | None = None
    probability_min: float = 0.0
    probability_max: float = 1.0
    employee_id: int | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions of the filter."""
        conditions: list[sa.ColumnElement[bool]] = []
        if self.model_names:
            conditions.append(traces.c.model_name.in_(self.model_names))
        if self.model_versions:
            conditions.append(traces.c.model_version.in_(self.model_versions))
        if self.prediction is not None:
            conditions.append(traces.c.prediction == self.prediction)
        if self.probability_min > 0.0 or self.probability_max < 1.0:
            conditions.append(traces.c.probability.between(self.probability_min, self.probability_max))
        if self.employee_id is not None:
            conditions.append(traces.c.employee_id == self.employee_id)
        return conditions


def backend(engine: Engine) -> str:
    """``postgresql`` or ``sqlite``."""
    return engine.dialect.name


def has_percentiles(engine: Engine) -> bool:
    """True when the backend computes exact percentiles in SQL (PostgreSQL)."""
    return backend(engine) == "postgresql"


def epoch_bucket(engine: Engine, column: Any, step_s: int) -> sa.ColumnElement[int]:
    """Epoch seconds of ``column`` floored to a multiple of ``step_s``, computed by the database."""
    if backend(engine) == "postgresql":
        return sa.cast(sa.func.floor(sa.extract("epoch", column) / step_s) * step_s, sa.BigInteger)
    seconds = sa.cast(sa.func.strftime("%s", column), sa.Integer)
    return seconds.op("/")(step_s) * step_s


def time_step(span: timedelta) -> int:
    """The bucket width (seconds) for a chart spanning ``span``."""
    for step in TIME_STEPS_S:
        if span.total_seconds() / step <= MAX_TIME_BUCKETS:
            return step
    return TIME_STEPS_S[-1]


def _as_time(epoch_seconds: pd.Series) -> pd.Series:
    return pd.to_datetime(epoch_seconds.astype("int64"), unit="s", utc=True)


def _frame(engine: Engine, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    with engine.connect() as connection:
        result = connection.execute(statement, dict(params or {}))
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _is_request() -> sa.ColumnElement[bool]:
    return sa.or_(traces.c.batch_index.is_(None), traces.c.batch_index == 0)


def _is_error() -> sa.ColumnElement[bool]:
    return sa.and_(traces.c.status == "error", traces.c.prediction.is_(None))


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def trace_table_exists(engine: Engine) -> bool:
    """True when the database holds the trace table (the service has migrated it)."""
    return sa.inspect(engine).has_table(traces.name)


def trace_totals(engine: Engine, window: Window) -> dict[str, Any]:
    """Headline counts of the window: requests, rows, errors, fallbacks, batch share, first and last trace."""
    statement = sa.select(
        sa.func.count().label("rows"),
        _count_if(_is_request()).label("requests"),
        _count_if(traces.c.batch_index == 0).label("batch_requests"),
        _count_if(traces.c.batch_index.is_not(None)).label("batch_rows"),
        _count_if(_is_error()).label("errors"),
        _count_if(traces.c.fallback.is_(True)).label("fallbacks"),
        sa.func.min(traces.c.received_at).label("first"),
        sa.func.max(traces.c.received_at).label("last"),
    ).where(*window.where())
    with engine.connect() as connection:
        row = connection.execute(statement).mappings().one()
    totals = {key: int(row[key]) for key in ("rows", "requests", "batch_requests", "batch_rows", "errors",
                                             "fallbacks")}
    totals.update(first=row["first"], last=row["last"])
    rows = totals["rows"]
    totals["error_rate"] = totals["errors"] / rows if rows else 0.0
    totals["fallback_rate"] = totals["fallbacks"] / rows if rows else 0.0
    totals["batch_request_share"] = totals["batch_requests"] / totals["requests"] if totals["requests"] else 0.0
    return totals


def any_trace_received_at(engine: Engine) -> datetime | None:
    """When the newest trace of the whole table was received (``None``: no trace at all)."""
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.max(traces.c.received_at))).scalar()


def volume_over_time(engine: Engine, window: Window, step_s: int) -> pd.DataFrame:
    """Requests, rows, errors and fallbacks per time bucket and model version."""
    bucket = epoch_bucket(engine, traces.c.received_at, step_s).label("bucket")
    statement = (
        sa.select(bucket, traces.c.model_name, traces.c.model_version,
                  _count_if(_is_request()).label("requests"), sa.func.count().label("rows"),
                  _count_if(_is_error()).label("errors"), _count_if(traces.c.fallback.is_(True)).label("fallbacks"))
        .where(*window.where())
        .group_by(bucket, traces.c.model_name, traces.c.model_version)
        .order_by(bucket)
    )
    frame = _frame(engine, statement)
    if not frame.empty:
        frame["time"] = _as_time(frame["bucket"])
        frame["model"] = frame["model_name"] + ":" + frame["model_version"]
    return frame


def _approximate_percentiles(counts: np.ndarray) -> list[float]:
    """Percentiles from counts in ``LATENCY_EDGES_MS`` buckets, linear within a bucket."""
    total = counts.sum()
    cumulative = np.cumsum(counts)
    values = []
    for q in PERCENTILES:
        rank = q * total
        index = int(np.searchsorted(cumulative, rank, side="left"))
        index = min(index, len(counts) - 1)
        before = cumulative[index - 1] if index else 0
        low = LATENCY_EDGES_MS[index]
        high = LATENCY_EDGES_MS[index + 1] if index + 1 < len(LATENCY_EDGES_MS) else low
        inside = (rank - before) / counts[index] if counts[index] else 0.0
        values.append(float(low + inside * (high - low)))
    return values


def latency_percentiles(engine: Engine, window: Window, step_s: int | None = None) -> pd.DataFrame:
    """p50/p95/p99 of total and inference time (ms), per time bucket when ``step_s`` is given.

    Columns: ``bucket`` (epoch seconds, 0 without a step), ``measure``
    (``total`` or ``inference``), ``p50``, ``p95``, ``p99``, ``approximate``.
    """
    rows = []
    for measure, column in (("total", traces.c.total_ms), ("inference", traces.c.inference_ms)):
        bucket = epoch_bucket(engine, traces.c.received_at, step_s) if step_s else sa.literal_column("0")
        bucket = bucket.label("bucket")
        grouping = [bucket] if step_s else []
        conditions = [*window.where(), column.is_not(None)]
        if has_percentiles(engine):
            exact = [sa.func.percentile_cont(q).within_group(column).label(f"p{q}") for q in PERCENTILES]
            statement = sa.select(bucket, *exact).where(*conditions).group_by(*grouping)
            for record in _frame(engine, statement).itertuples(index=False):
                if record[1] is not None:
                    rows.append((int(record[0]), measure, *map(float, record[1:]), False))
            continue
        cases = [(column < edge, index) for index, edge in enumerate(LATENCY_EDGES_MS[1:])]
        latency_bucket = sa.case(*cases, else_=len(LATENCY_EDGES_MS) - 1).label("latency_bucket")
        statement = (sa.select(bucket, latency_bucket, sa.func.count().label("rows"))
                     .where(*conditions).group_by(*grouping, latency_bucket))
        frame = _frame(engine, statement)
        for time_bucket, group in frame.groupby("bucket", sort=True):
            counts = np.zeros(len(LATENCY_EDGES_MS))
            counts[group["latency_bucket"].astype(int).to_numpy()] = group["rows"].to_numpy()
            rows.append((int(time_bucket), measure, *_approximate_percentiles(counts), True))
    frame = pd.DataFrame(rows, columns=["bucket", "measure", "p50", "p95", "p99", "approximate"])
    if not frame.empty:
        frame["time"] = _as_time(frame["bucket"])
    return frame


def model_volume(engine: Engine, window: Window) -> pd.DataFrame:
    """Per model version: rows, predicted positives, positive rate, fallbacks, errors, mean probability."""
    statement = (
        sa.select(traces.c.model_name, traces.c.model_version, sa.func.count().label("rows"),
                  _count_if(traces.c.prediction == 1).label("positives"),
                  _count_if(traces.c.prediction.is_not(None)).label("predicted"),
                  _count_if(traces.c.fallback.is_(True)).label("fallbacks"),
                  _count_if(_is_error()).label("errors"),
                  sa.func.avg(traces.c.probability).label("mean_probability"))
        .where(*window.where())
        .group_by(traces.c.model_name, traces.c.model_version)
        .order_by(traces.c.model_name, traces.c.model_version)
    )
    frame = _frame(engine, statement)
    if not frame.empty:
        frame["positive_rate"] = frame["positives"] / frame["predicted"].where(frame["predicted"] > 0)
        frame["model"] = frame["model_name"] + ":" + frame["model_version"]
    return frame


def probability_histogram(engine: Engine, window: Window, bins: int = PROBABILITY_BINS) -> pd.DataFrame:
    """Rows per probability bin (``bins`` equal bins over [0, 1]) and model version."""
    cases = [(traces.c.probability < (index + 1) / bins, index) for index in range(bins - 1)]
    probability_bin = sa.case(*cases, else_=bins - 1).label("bin")
    statement = (
        sa.select(traces.c.model_name, traces.c.model_version, probability_bin, sa.func.count().label("rows"))
        .where(*window.where(), traces.c.probability.is_not(None))
        .group_by(traces.c.model_name, traces.c.model_version, probability_bin)
    )
    frame = _frame(engine, statement)
    if not frame.empty:
        frame["model"] = frame["model_name"] + ":" + frame["model_version"]
        frame["probability_from"] = frame["bin"] / bins
        frame["probability_to"] = (frame["bin"] + 1) / bins
        frame["share"] = frame["rows"] / frame.groupby("model")["rows"].transform("sum")
    return frame


def prediction_count(engine: Engine, window: Window, selection: PredictionFilter) -> int:
    """How many traces of the window match ``selection``."""
    statement = sa.select(sa.func.count()).select_from(traces).where(*window.where(), *selection.where())
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def prediction_rows(engine: Engine, window: Window, selection: PredictionFilter, limit: int) -> pd.DataFrame:
    """The newest ``limit`` traces of the window matching ``selection`` (listed columns, no inputs)."""
    statement = (sa.select(*[traces.c[name] for name in LISTED_COLUMNS])
                 .where(*window.where(), *selection.where())
                 .order_by(traces.c.received_at.desc(), traces.c.request_id)
                 .limit(limit))
    frame = _frame(engine, statement)
    if frame.empty:
        return pd.DataFrame(columns=list(LISTED_COLUMNS))
    return frame


def trace_by_request_id(engine: Engine, request_id: str) -> dict[str, Any] | None:
    """The whole stored trace of one request, inputs included (``None`` when unknown)."""
    statement = sa.select(*[traces.c[name] for name in TRACE_COLUMNS], traces.c.inputs).where(
        traces.c.request_id == request_id)
    with engine.connect() as connection:
        row = connection.execute(statement).mappings().one_or_none()
    return dict(row) if row is not None else None


def _sql_number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"not a finite bin edge: {value!r}")
    return repr(float(value))


def drift_counts(engine: Engine, window: Window, model_name: str, model_version: str,
                 reference: Mapping[str, Mapping[str, Any]], max_rows: int) -> pd.DataFrame:
    """Live counts of every input per day, on the bins of ``reference`` (the model card's distributions).

    Reads the newest ``max_rows`` traces of the model version in the window
    (a sample when there are more) and returns, per ``day`` (epoch seconds),
    ``feature`` and ``bin`` (numeric: index of the reference histogram bin)
    or ``category`` (categorical): ``rows``, and ``outside`` (numeric values
    outside the training range).

    Each inputs document is parsed once into its 30 values (``json_to_record``
    on PostgreSQL), kept in a materialised table, then one small ``GROUP BY``
    per input runs over it.
    """
    postgres = backend(engine) == "postgresql"
    conditions = ["model_name = :model_name", "model_version = :model_version"]
    params: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    # The sample is the rows received since the newest max_rows-th one: found on the index, so no sort of the
    # documents themselves.
    cutoff = sample_start(engine, window, model_name, model_version, max_rows)
    start = max(filter(None, (window.start, cutoff)), default=None)
    if start is not None:
        conditions.append("received_at >= :start")
        params["start"] = start
    if window.end is not None:
        conditions.append("received_at < :end")
        params["end"] = window.end
    if postgres:
        day = f"CAST(FLOOR(EXTRACT(EPOCH FROM received_at) / {DAY_S}) * {DAY_S} AS BIGINT)"
        # json_to_record parses each document once into typed columns.
        record = ", ".join([f'"{f}" double precision' for f in NUMERIC_FEATURES]
                           + [f'"{f}" text' for f in CATEGORICAL_FEATURES])
        source = f"{traces.name} AS t, json_to_record(t.inputs) AS r({record})"

        def number(index: int, feature: str) -> str:
            return f'r."{feature}" AS v{index}'

        text = number
    else:
        day = f"(CAST(strftime('%s', received_at) AS INTEGER) / {DAY_S}) * {DAY_S}"
        source = traces.name

        def number(index: int, feature: str) -> str:
            return f"CAST(json_extract(inputs, '$.{feature}') AS REAL) AS v{index}"

        def text(index: int, feature: str) -> str:
            return f"json_extract(inputs, '$.{feature}') AS v{index}"

    extracted, counts = [], []
    for index, feature in enumerate(NUMERIC_FEATURES + CATEGORICAL_FEATURES):
        spec = reference.get(feature)
        if not spec:
            continue
        value = f"v{index}"
        if feature in CATEGORICAL_FEATURES:
            extracted.append(text(index, feature))
            counts.append(f"SELECT day, '{feature}' AS feature, CAST(NULL AS INTEGER) AS bin, {value} AS category, "
                          f"COUNT(*) AS rows, 0 AS outside FROM extracted GROUP BY day, {value}")
            continue
        edges = spec["histogram"]["edges"]
        bins = " ".join(f"WHEN {value} < {_sql_number(edge)} THEN {position}"
                        for position, edge in enumerate(edges[1:-1]))
        outside = (f"CASE WHEN {value} < {_sql_number(spec['min'])} OR {value} > {_sql_number(spec['max'])} "
                   "THEN 1 ELSE 0 END")
        extracted.append(number(index, feature))
        counts.append(f"SELECT day, '{feature}' AS feature, CASE {bins} ELSE {len(edges) - 2} END AS bin, "
                      f"CAST(NULL AS TEXT) AS category, COUNT(*) AS rows, SUM({outside}) AS outside "
                      f"FROM extracted GROUP BY day, 3")
    if not counts:
        return pd.DataFrame(columns=["day", "feature", "bin", "category", "rows", "outside"])
    materialized = "MATERIALIZED " if postgres or engine.dialect.server_version_info >= (3, 35) else ""
    sql = f"""
        WITH extracted AS {materialized}(
            SELECT {day} AS day, {', '.join(extracted)} FROM {source}
            WHERE {' AND '.join(conditions)}
        )
        {' UNION ALL '.join(counts)}
    """
    bind = [sa.bindparam("start", type_=traces.c.received_at.type),
            sa.bindparam("end", type_=traces.c.received_at.type)]
    statement = sa.text(sql).bindparams(*[b for b in bind if b.key in params])
    return _frame(engine, statement, params)


def sample_start(engine: Engine, window: Window, model_name: str, model_version: str, max_rows: int) -> datetime | None:
    """When the newest ``max_rows`` traces of a model version in the window begin (``None``: fewer than that)."""
    statement = (sa.select(traces.c.received_at)
                 .where(*window.where(), traces.c.model_name == model_name, traces.c.model_version == model_version)
                 .order_by(traces.c.received_at.desc()).offset(max_rows - 1).limit(1))
    with engine.connect() as connection:
        return connection.execute(statement).scalar()
