"""Outcomes: whether an employee really left, and when it became known.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-07

``outcomes`` is append-only: a correction is a new row, and an employee's
current outcome is the row with the latest ``known_at``, then the latest
``recorded_at``. ``source`` says where it came from (the training extracts,
a CSV file, the API). Types are spelled out (not imported from
persistence.schema) so this revision stays what it was.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``outcomes`` and its indexes."""
    op.create_table(
        "outcomes",
        sa.Column("outcome_id", sa.String(length=36), nullable=False),
        sa.Column("employee_id", sa.BigInteger(), nullable=False, comment="The employee whose outcome this is."),
        sa.Column("has_left", sa.Boolean(), nullable=False, comment="True when the employee left (Oui)."),
        sa.Column("known_at", sa.Date(), nullable=False, comment="The day the outcome became known."),
        sa.Column("source", sa.String(length=20), nullable=False, comment="training_extracts, csv or api."),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, comment="When this row was recorded."),
        sa.CheckConstraint("source IN ('training_extracts', 'csv', 'api')", name=op.f("ck_outcomes_source")),
        sa.PrimaryKeyConstraint("outcome_id", name=op.f("pk_outcomes")),
    )
    op.create_index(op.f("ix_outcomes_employee_id_known_at_recorded_at"), "outcomes",
                    ["employee_id", "known_at", "recorded_at"])
    op.create_index(op.f("ix_outcomes_recorded_at"), "outcomes", ["recorded_at"])


def downgrade() -> None:
    """Drop ``outcomes``."""
    op.drop_index(op.f("ix_outcomes_recorded_at"), table_name="outcomes")
    op.drop_index(op.f("ix_outcomes_employee_id_known_at_recorded_at"), table_name="outcomes")
    op.drop_table("outcomes")
