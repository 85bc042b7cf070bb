"""The trace database schema: imported employees and prediction traces.

One trace row per prediction, keyed by ``request_id`` (the id the service
answers with): the request and its answer together. Both tables are derived
from their one declaration: the ``employees`` columns from the 30 fields of
``attrition.schema``, the ``prediction_traces`` columns from
:class:`persistence.database.traces.Trace`. The same tables run on PostgreSQL and
SQLite: JSON inputs are json on PostgreSQL, timestamps are stored in UTC.
Migrations in ``persistence/database/migrations`` stay explicit; a test checks that
they build exactly these tables.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from attrition.schema import EMPLOYEE_ID, FEATURES, TARGET, FeatureSpec
from persistence.database.columns import CATEGORY_LENGTH, JSONDocument, UTCDateTime, utcnow
from persistence.database.traces import ENDPOINTS, STATUSES, trace_columns

__all__ = ["CATEGORY_LENGTH", "ENDPOINTS", "OUTCOME_SOURCES", "STATUSES", "employee_erasures", "employees",
           "metadata", "outcomes", "prediction_traces", "trace_reads", "utcnow"]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so migrations can name what they alter on both backends."""

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _feature_column(spec: FeatureSpec) -> sa.Column[Any]:
    sql_type = sa.String(CATEGORY_LENGTH) if spec.kind == "categorical" else sa.Integer()
    return sa.Column(spec.name, sql_type, nullable=False)


employees = sa.Table(
    "employees", metadata,
    sa.Column(EMPLOYEE_ID, sa.Integer, primary_key=True, autoincrement=False,
              comment="The employee id of the extracts."),
    *(_feature_column(spec) for spec in FEATURES),
    sa.Column(TARGET, sa.String(3), nullable=False, comment="Oui when the employee left."),
    sa.Column("imported_at", UTCDateTime, nullable=False, default=utcnow),
    comment=None,
)
"""One employee of the HR extracts: the 30 input fields and whether they left."""

prediction_traces = sa.Table(
    "prediction_traces", metadata,
    *trace_columns(),
    sa.CheckConstraint("status IN ('ok', 'error')", name="status"),
    sa.CheckConstraint("prediction IS NULL OR prediction IN (0, 1)", name="prediction"),
    sa.Index(None, "received_at"),
    # The dashboard and GET /predictions look up one employee's traces over a period.
    sa.Index(None, "employee_id", "received_at"),
    sa.Index(None, "model_name", "model_version", "received_at"),
)
"""One prediction: what the client asked, what the service answered, which model, how fast.

One row per predicted employee (a batch row has its own request id), written
whole in one statement, so a request never exists without its answer.
"""

trace_reads = sa.Table(
    "trace_reads", metadata,
    # A key made by the reader, not a sequence: a role that may only insert here needs no sequence grant.
    sa.Column("read_id", sa.String(36), primary_key=True),
    sa.Column("read_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("key_id", sa.String(64), nullable=True, comment="Id of the API key that read; null without keys."),
    sa.Column("route", sa.String(100), nullable=False, comment="What read: GET /predictions, a dashboard view."),
    sa.Column("employee_id", sa.BigInteger, nullable=True,
              comment="The employee asked for, or whose trace was read by request id."),
    sa.Column("request_id", sa.String(64), nullable=True, comment="The request id asked for."),
    sa.Column("parameters", JSONDocument, nullable=False, comment="The read's other parameters (period, page)."),
    sa.Column("rows", sa.Integer, nullable=False, comment="Traces returned."),
    # Set by the database, never by the reader: PostgreSQL's default current_user (revision 0005), a column the
    # dashboard's role may not insert (dashboard/readonly_role.py).
    sa.Column("reader", sa.String(64), nullable=True,
              comment="The database role that recorded the read (PostgreSQL: current_user, not settable by the "
                      "dashboard's role); null before revision 0005 and on SQLite."),
    sa.Index(None, "employee_id", "read_at"),
    sa.Index(None, "read_at"),
)
"""Who read traces, and when: one row per read through the API or the dashboard (persistence/personal_data/reads.py)."""

employee_erasures = sa.Table(
    "employee_erasures", metadata,
    sa.Column("erasure_id", sa.String(36), primary_key=True),
    sa.Column("employee_id", sa.BigInteger, nullable=False, comment="The employee erased."),
    sa.Column("erased_at", UTCDateTime, nullable=False,
              comment="When: journaled traces of the employee received up to this time are never replayed."),
    sa.Column("erased_by", sa.String(200), nullable=False, comment="Who ran the erasure (an operator, not a key)."),
    sa.Index(None, "employee_id", "erased_at"),
)
"""Tombstones: one row per erasure of an employee's data (persistence/personal_data/erasure.py); no personal data
but the id."""

OUTCOME_SOURCES = ("training_extracts", "csv", "api")
"""Where an outcome came from: the extracts the models were fitted on (``import-dataset``), a CSV file, the API."""

outcomes = sa.Table(
    "outcomes", metadata,
    sa.Column("outcome_id", sa.String(36), primary_key=True),
    sa.Column("employee_id", sa.BigInteger, nullable=False, comment="The employee whose outcome this is."),
    sa.Column("has_left", sa.Boolean, nullable=False, comment="True when the employee left (Oui)."),
    sa.Column("known_at", sa.Date, nullable=False, comment="The day the outcome became known."),
    sa.Column("source", sa.String(20), nullable=False, comment="training_extracts, csv or api."),
    sa.Column("recorded_at", UTCDateTime, nullable=False, default=utcnow, comment="When this row was recorded."),
    sa.CheckConstraint("source IN (" + ", ".join(f"'{source}'" for source in OUTCOME_SOURCES) + ")", name="source"),
    # The current outcome of an employee: their latest known day, then latest recording.
    sa.Index(None, "employee_id", "known_at", "recorded_at"),
    sa.Index(None, "recorded_at"),
)
"""What really happened to an employee, months after a prediction: append-only, a correction is a new row
(persistence/database/outcomes.py)."""
