"""An outcome as a client reports it: whether an employee left, and the day it became known."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from attrition.schema import EmployeeId

EARLIEST_DAY = date(1970, 1, 1)


def iso_day(value: Any) -> Any:
    """``"2026-11-30"`` → a date; anything but an ISO ``YYYY-MM-DD`` string (a number, a time) is refused."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("expected an ISO date, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO date, YYYY-MM-DD") from None


def not_in_future(value: date) -> date:
    """A day no later than tomorrow (UTC): an outcome is known when it is reported, give or take a time zone."""
    if not EARLIEST_DAY <= value <= datetime.now(timezone.utc).date() + timedelta(days=1):
        raise ValueError("the day an outcome became known cannot be in the future, nor before 1970-01-01")
    return value


KnownDay = Annotated[date, BeforeValidator(not_in_future), BeforeValidator(iso_day)]


class OutcomeReport(BaseModel):
    """One outcome: the employee (imported, or tagging a trace), whether they left, when it became known."""

    model_config = ConfigDict(extra="forbid")

    employee_id: EmployeeId = Field(description="An imported employee, or one whose id tags a trace.")
    left: Annotated[bool, Strict()] = Field(description="true when the employee left (Oui), false when they stayed.")
    known_at: KnownDay | None = Field(default=None, description="ISO date the outcome became known; default: today "
                                                                "(UTC).", examples=["2026-11-30"])
