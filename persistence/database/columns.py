"""Column types shared by the trace database's tables: UTC timestamps and JSON documents."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.engine import Dialect

CATEGORY_LENGTH = 32
"""Room for every categorical value of the employee schema (the longest has 23 characters)."""


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored in UTC on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no timezone, so values are
    converted to UTC before they are written and read back as UTC. Naive
    datetimes are refused: their meaning depends on the machine's clock.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC (the only zone SQLite can compare correctly)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given where a timezone-aware one is required")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to SQLite's naive values and normalise PostgreSQL's to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


JSONDocument = sa.JSON().with_variant(JSON(), "postgresql")
"""A JSON document stored as the text written: ``json`` on PostgreSQL (no re-encoding on insert), text on SQLite."""
