"""Access trail: the key that asked, in each trace; a log of trace reads.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

``prediction_traces.key_id`` is the id of the API key of the request (never
the key; null without keys, and for the traces written before this
revision). ``trace_reads`` records every read of traces: who (key id), what
(route, the employee or request asked, the other parameters), how many rows,
when. Its key is made by the reader, so a role that may only insert into it
needs no sequence. Types are spelled out (not imported from
persistence.schema) so this revision stays what it was.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``prediction_traces.key_id``; create ``trace_reads`` and its indexes."""
    op.add_column("prediction_traces", sa.Column(
        "key_id", sa.String(length=64), nullable=True,
        comment="Id of the API key that asked (never the key); null without keys."))
    op.create_table(
        "trace_reads",
        sa.Column("read_id", sa.String(length=36), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=True,
                  comment="Id of the API key that read; null without keys."),
        sa.Column("route", sa.String(length=100), nullable=False,
                  comment="What read: GET /predictions, a dashboard view."),
        sa.Column("employee_id", sa.BigInteger(), nullable=True,
                  comment="The employee asked for, or whose trace was read by request id."),
        sa.Column("request_id", sa.String(length=64), nullable=True, comment="The request id asked for."),
        sa.Column("parameters", sa.JSON().with_variant(postgresql.JSON(), "postgresql"), nullable=False,
                  comment="The read's other parameters (period, page)."),
        sa.Column("rows", sa.Integer(), nullable=False, comment="Traces returned."),
        sa.PrimaryKeyConstraint("read_id", name=op.f("pk_trace_reads")),
    )
    op.create_index(op.f("ix_trace_reads_employee_id_read_at"), "trace_reads", ["employee_id", "read_at"])
    op.create_index(op.f("ix_trace_reads_read_at"), "trace_reads", ["read_at"])


def downgrade() -> None:
    """Drop ``trace_reads`` and ``prediction_traces.key_id``."""
    op.drop_index(op.f("ix_trace_reads_read_at"), table_name="trace_reads")
    op.drop_index(op.f("ix_trace_reads_employee_id_read_at"), table_name="trace_reads")
    op.drop_table("trace_reads")
    # A plain column: SQLite (3.35+) drops it in place, no table rebuild.
    op.drop_column("prediction_traces", "key_id")
