"""The bounded types of every route parameter: what the storage accepts, and nothing beyond it.

A value past a bound would reach the database and fail there (a year the
driver cannot convert, an id past a signed 64-bit integer, a NUL byte that
PostgreSQL refuses in text), which the service would answer 500. Each type
here refuses such a value while the request is validated, so it answers 400
naming the parameter. ``service.py`` annotates its signatures with them.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from attrition.schema import MAX_ID

EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""The earliest time a period may name."""
LATEST = datetime(9999, 12, 30, tzinfo=timezone.utc)
"""The latest time a period may name: a day short of the calendar's end, so no time zone offset overflows it."""

MAX_MODEL_NAME = 200
"""The longest model reference (``name``, ``name:version`` or an alias)."""
MAX_REQUEST_ID = 64
"""The longest request id (a UUID is 36 characters; the column holds 64)."""

PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""No control character: a NUL byte breaks PostgreSQL text, and none belongs in a name or an id."""


ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}(:?\d{2})?)?)?$")
"""A date, or a date and time with an optional offset: ``2026-11-30``, ``2026-11-30T08:00:00+01:00``."""


def iso_8601(value: Any) -> Any:
    """``value`` when it is written as an ISO 8601 date or time; ValueError otherwise.

    pydantic would also read ``0.5`` or ``1700000000`` as seconds since 1970:
    the document promises ISO 8601, and a number is more likely a mistake.
    """
    if isinstance(value, str) and not ISO_8601.match(value):
        raise ValueError("must be an ISO 8601 date or time, such as 2026-11-30T08:00:00Z")
    return value


def within_period_bounds(value: datetime) -> datetime:
    """``value`` as an aware UTC time when it lies within the storable period; ValueError otherwise.

    A naive time is taken as UTC, the zone every trace timestamp is stored in.
    The comparison happens before any conversion: converting
    ``0001-01-01T00:00:00+01:00`` to UTC would overflow.
    """
    aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    if not EARLIEST <= aware <= LATEST:
        raise ValueError(f"must lie between {EARLIEST.isoformat()} and {LATEST.isoformat()}")
    return aware.astimezone(timezone.utc)


PeriodBound = Annotated[datetime, BeforeValidator(iso_8601), AfterValidator(within_period_bounds)]
"""A time bounding a period of traces: ISO 8601, from 1970-01-01 to 9999-12-30 UTC (naive: UTC)."""

StoredId = Annotated[int, Field(ge=1, le=MAX_ID)]
"""A stored id (an employee) in a query: 1 to 2^63 - 1, written as an integer (``12``, or ``12.0``)."""

Offset = Annotated[int, Field(ge=0, le=MAX_ID)]
"""A count of rows to skip: 0 to 2^63 - 1."""

ModelReference = Annotated[str, Field(min_length=1, max_length=MAX_MODEL_NAME, pattern=PRINTABLE)]
"""A model named as ``name``, ``name:version`` or an alias: 1 to 200 printable characters."""

RequestId = Annotated[str, Field(min_length=1, max_length=MAX_REQUEST_ID, pattern=PRINTABLE)]
"""A request id: 1 to 64 printable characters."""
