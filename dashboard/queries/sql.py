"""The SQL both backends share, and where PostgreSQL and SQLite differ (time buckets, frames of results)."""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from persistence.database.schema import prediction_traces as traces

DAY_S = 86_400


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


def as_time(epoch_seconds: pd.Series) -> pd.Series:
    """Epoch seconds as UTC times."""
    return pd.to_datetime(epoch_seconds.astype("int64"), unit="s", utc=True)


def frame_of(engine: Engine, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The rows of ``statement`` as a frame (its columns even when empty)."""
    with engine.connect() as connection:
        result = connection.execute(statement, dict(params or {}))
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def is_request() -> sa.ColumnElement[bool]:
    """A request is a single call, or the first row (``batch_index`` 0) of a batch."""
    return sa.or_(traces.c.batch_index.is_(None), traces.c.batch_index == 0)


def is_error() -> sa.ColumnElement[bool]:
    """An error is a trace with status ``error`` and no prediction."""
    return sa.and_(traces.c.status == "error", traces.c.prediction.is_(None))


def count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    """How many rows meet ``condition`` (0, not NULL, on no row)."""
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)
