"""The Drift page's read: live counts of every input on the bins of a card's reference, counted in SQL.

The inputs document is read with ``json_to_record`` on PostgreSQL and
``json_extract`` on SQLite.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Mapping

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from attrition.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from dashboard.queries.sql import DAY_S, backend, frame_of
from dashboard.queries.window import Window
from persistence.database.schema import prediction_traces as traces


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
    return frame_of(engine, statement, params)


def sample_start(engine: Engine, window: Window, model_name: str, model_version: str, max_rows: int) -> datetime | None:
    """When the newest ``max_rows`` traces of a model version in the window begin (``None``: fewer than that)."""
    statement = (sa.select(traces.c.received_at)
                 .where(*window.where(), traces.c.model_name == model_name, traces.c.model_version == model_version)
                 .order_by(traces.c.received_at.desc()).offset(max_rows - 1).limit(1))
    with engine.connect() as connection:
        return connection.execute(statement).scalar()
