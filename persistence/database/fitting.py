"""Checks that a value fits its column, so the database never refuses a trace for its content.

Built from the SQL type of each :class:`~persistence.database.traces.Trace` field
(:func:`column_checks`): string lengths, integer ranges, finite floats,
booleans, JSON documents that serialise, no NUL character (PostgreSQL's
text refuses it). A failing check raises :class:`ValueError` naming the field
and the rule, never the value (inputs are personal data).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from persistence.database.columns import JSONDocument, UTCDateTime

Check = Callable[[str, Any], None]

INTEGER_RANGES: tuple[tuple[type[sa.types.TypeEngine[Any]], int], ...] = (
    (sa.SmallInteger, 2 ** 15), (sa.BigInteger, 2 ** 63), (sa.Integer, 2 ** 31))
"""Signed ranges of the integer types (most specific first: SmallInteger and BigInteger subclass Integer)."""


def _text(limit: int | None) -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, not {type(value).__name__}")
        if limit is not None and len(value) > limit:
            raise ValueError(f"{name} has {len(value)} characters; its column holds {limit}")
        if "\x00" in value:
            raise ValueError(f"{name} contains a NUL character, which the database refuses")
    return check


def _integer(bound: int) -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, not {type(value).__name__}")
        if not -bound <= value < bound:
            raise ValueError(f"{name} is out of its column's range [{-bound}, {bound - 1}]")
    return check


def _float(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")


def _boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a boolean, not {type(value).__name__}")


def _json_document(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, not {type(value).__name__}")
    try:
        # What the writer sends: COPY encodes with orjson, the journal with json (orjson is the stricter).
        text = orjson.dumps(value)
    except TypeError as exc:
        raise ValueError(f"{name} is not a JSON document: {exc}") from None
    if b"\\u0000" in text:
        raise ValueError(f"{name} contains a NUL character, which the database refuses")


def _any(_name: str, _value: Any) -> None:
    return None


def column_check(sql_type: Any) -> Check:
    """The check of a value against a column of ``sql_type``."""
    if sql_type is UTCDateTime or isinstance(sql_type, UTCDateTime):
        return _any  # timezone-awareness is checked by the trace itself
    if sql_type is JSONDocument or isinstance(sql_type, sa.JSON):
        return _json_document
    kind = sql_type if isinstance(sql_type, type) else type(sql_type)
    if issubclass(kind, sa.Boolean):
        return _boolean
    for integer, bound in INTEGER_RANGES:
        if issubclass(kind, integer):
            return _integer(bound)
    if issubclass(kind, sa.Float):
        return _float
    if issubclass(kind, sa.String):  # Text is a String without a length
        return _text(getattr(sql_type, "length", None))
    return _any


def column_checks(fields: Sequence[dataclasses.Field[Any]]) -> tuple[tuple[str, Check], ...]:
    """``(field name, check)`` of each field; a field whose default is None (a nullable column) may be None."""
    checks = []
    for f in fields:
        check = column_check(f.metadata["sql_type"])
        if check is _any:
            continue
        if f.default is None:
            check = _nullable(check)
        checks.append((f.name, check))
    return tuple(checks)


def _nullable(check: Check) -> Check:
    def nullable(name: str, value: Any) -> None:
        if value is not None:
            check(name, value)
    return nullable


class RowCheck:
    """Every column check of a row in one pass: a quick test per value, the full check only where it fails.

    The quick tests (exact type, length or range, no NUL) accept only values
    the full checks accept too; anything else (a JSON document, an int in a
    float column, a faulty value) goes through :func:`column_check`, which
    passes it or raises naming the field and the rule. A trace is checked on
    the answer's path, once per row of every batch: this keeps it to a few
    microseconds.
    """

    def __init__(self, fields: Sequence[dataclasses.Field[Any]]) -> None:
        self._full = dict(column_checks(fields))
        self._quick: list[tuple[str, type, float, bool]] = []
        for f in fields:
            if f.name not in self._full:
                continue
            sql_type = f.metadata["sql_type"]
            kind = sql_type if isinstance(sql_type, type) else type(sql_type)
            quick: tuple[type, float] = (dict, 0)  # no quick test: the full check decides
            if issubclass(kind, sa.Boolean):
                quick = (bool, 0)
            elif issubclass(kind, sa.Integer):
                quick = (int, next(bound for integer, bound in INTEGER_RANGES if issubclass(kind, integer)))
            elif issubclass(kind, sa.Float):
                quick = (float, 0)
            elif issubclass(kind, sa.String) and not issubclass(kind, sa.JSON):
                quick = (str, getattr(sql_type, "length", None) or math.inf)
            self._quick.append((f.name, *quick, f.default is None))

    def __call__(self, row: Any) -> None:
        """Raise :class:`ValueError` naming the first field of ``row`` (an object) that does not fit its column."""
        for name, kind, limit, nullable in self._quick:
            value = getattr(row, name)
            if value is None:
                if nullable:
                    continue
            elif type(value) is kind:
                if kind is str:
                    if len(value) <= limit and "\x00" not in value:
                        continue
                elif kind is int:
                    if -limit <= value < limit:
                        continue
                elif kind is float:
                    if math.isfinite(value):
                        continue
                elif kind is bool:
                    continue
            self._full[name](name, value)
