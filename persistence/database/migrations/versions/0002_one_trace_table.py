"""One trace table: each request and its answer in one row of ``prediction_traces``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

A request and its answer were two rows in two tables, written in one
transaction: two ``COPY`` statements and two primary-key indexes per group
commit. One row per trace halves that, and lets a group commit be a single
statement. The inputs are kept on PostgreSQL as the JSON text the service
wrote (``json``): ``jsonb`` parsed and re-encoded every trace on insert, a
fifth of the database's CPU per trace, for operators the trace never uses.
Existing traces are moved over. Types are spelled out (not imported from
persistence.schema) so this revision stays what it was.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REQUEST_COLUMNS = ("request_id", "received_at", "endpoint", "requested_model", "employee_id", "batch_index", "inputs")
RESULT_COLUMNS = ("request_id", "model_name", "model_version", "model_sha256", "service_version", "prediction",
                  "probability", "threshold", "fallback", "status", "error", "inference_ms", "total_ms", "created_at")
TRACE_COLUMNS = REQUEST_COLUMNS + RESULT_COLUMNS[1:]


def _columns(json_type: sa.types.TypeEngine) -> dict[str, sa.Column]:
    """Every trace column, by name (the inputs with ``json_type``)."""
    columns = [
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("endpoint", sa.String(length=32), nullable=False, comment="predict or predict_batch"),
        sa.Column("requested_model", sa.String(length=200), nullable=True),
        sa.Column("employee_id", sa.BigInteger(), nullable=True),
        sa.Column("batch_index", sa.Integer(), nullable=True),
        sa.Column("inputs", json_type, nullable=False, comment="The 30 fields the model was given."),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=True),
        sa.Column("service_version", sa.String(length=64), nullable=False),
        sa.Column("prediction", sa.SmallInteger(), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("fallback", sa.Boolean(), nullable=False, comment="Served by the default model after a failure."),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("inference_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]
    return {column.name: column for column in columns}


def _checks(table: str) -> list[sa.CheckConstraint]:
    return [sa.CheckConstraint("status IN ('ok', 'error')", name=op.f(f"ck_{table}_status")),
            sa.CheckConstraint("prediction IS NULL OR prediction IN (0, 1)", name=op.f(f"ck_{table}_prediction"))]


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Create ``prediction_traces``, move every trace into it, drop the two old tables."""
    columns = _columns(sa.JSON().with_variant(postgresql.JSON(), "postgresql"))
    op.create_table("prediction_traces", *(columns[name] for name in TRACE_COLUMNS), *_checks("prediction_traces"),
                    sa.PrimaryKeyConstraint("request_id", name=op.f("pk_prediction_traces")))
    op.create_index(op.f("ix_prediction_traces_received_at"), "prediction_traces", ["received_at"])
    op.create_index(op.f("ix_prediction_traces_employee_id_received_at"), "prediction_traces",
                    ["employee_id", "received_at"])
    op.create_index(op.f("ix_prediction_traces_model_name_model_version_received_at"), "prediction_traces",
                    ["model_name", "model_version", "received_at"])
    selected = [f"q.{name}" for name in REQUEST_COLUMNS] + [f"r.{name}" for name in RESULT_COLUMNS[1:]]
    if _postgres():
        selected[REQUEST_COLUMNS.index("inputs")] = "q.inputs::json"
    op.execute(f"INSERT INTO prediction_traces ({', '.join(TRACE_COLUMNS)}) SELECT {', '.join(selected)} "
               "FROM prediction_requests q JOIN prediction_results r ON r.request_id = q.request_id")
    op.drop_table("prediction_results")
    op.drop_table("prediction_requests")


def downgrade() -> None:
    """Split ``prediction_traces`` back into ``prediction_requests`` and ``prediction_results``."""
    requests = _columns(sa.JSON().with_variant(postgresql.JSONB(), "postgresql"))
    op.create_table("prediction_requests", *(requests[name] for name in REQUEST_COLUMNS),
                    sa.PrimaryKeyConstraint("request_id", name=op.f("pk_prediction_requests")))
    op.create_index(op.f("ix_prediction_requests_employee_id_received_at"), "prediction_requests",
                    ["employee_id", "received_at"])
    op.create_index(op.f("ix_prediction_requests_received_at"), "prediction_requests", ["received_at"])
    results = _columns(sa.JSON())
    op.create_table("prediction_results", *(results[name] for name in RESULT_COLUMNS), *_checks("prediction_results"),
                    sa.PrimaryKeyConstraint("request_id", name=op.f("pk_prediction_results")))
    op.create_index(op.f("ix_prediction_results_created_at"), "prediction_results", ["created_at"])
    op.create_index(op.f("ix_prediction_results_model_name_model_version_created_at"), "prediction_results",
                    ["model_name", "model_version", "created_at"])
    request_values = list(REQUEST_COLUMNS)
    if _postgres():
        request_values[REQUEST_COLUMNS.index("inputs")] = "inputs::jsonb"
    op.execute(f"INSERT INTO prediction_requests ({', '.join(REQUEST_COLUMNS)}) "
               f"SELECT {', '.join(request_values)} FROM prediction_traces")
    op.execute(f"INSERT INTO prediction_results ({', '.join(RESULT_COLUMNS)}) "
               f"SELECT {', '.join(RESULT_COLUMNS)} FROM prediction_traces")
    op.drop_table("prediction_traces")
