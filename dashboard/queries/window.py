"""What a page reads: a period of time, and the Predictions page's filter, as SQL conditions."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from persistence.database.schema import prediction_traces as traces


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

    models: tuple[str, ...] = ()
    """Model versions as ``name:version``: two versions of one model are two models here."""
    prediction: int | None = None
    probability_min: float = 0.0
    probability_max: float = 1.0
    employee_id: int | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions of the filter."""
        conditions: list[sa.ColumnElement[bool]] = []
        if self.models:
            pairs = [tag.partition(":") for tag in self.models]
            conditions.append(sa.or_(*[sa.and_(traces.c.model_name == name, traces.c.model_version == version)
                                       for name, _, version in pairs]))
        if self.prediction is not None:
            conditions.append(traces.c.prediction == self.prediction)
        if self.probability_min > 0.0 or self.probability_max < 1.0:
            conditions.append(traces.c.probability.between(self.probability_min, self.probability_max))
        if self.employee_id is not None:
            conditions.append(traces.c.employee_id == self.employee_id)
        return conditions
