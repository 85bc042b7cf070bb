"""Erasure tombstones: which employee was erased, when, by whom.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``employee_erasures`` holds one row per erasure (``python -m persistence
erase``): the employee id, the time, the operator; nothing else about the
employee. A journal replay skips the journaled traces of an erased employee
received up to ``erased_at``. Types are spelled out (not imported from
persistence.schema) so this revision stays what it was.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``employee_erasures`` and its index."""
    op.create_table(
        "employee_erasures",
        sa.Column("erasure_id", sa.String(length=36), nullable=False),
        sa.Column("employee_id", sa.BigInteger(), nullable=False, comment="The employee erased."),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False,
                  comment="When: journaled traces of the employee received up to this time are never replayed."),
        sa.Column("erased_by", sa.String(length=200), nullable=False,
                  comment="Who ran the erasure (an operator, not a key)."),
        sa.PrimaryKeyConstraint("erasure_id", name=op.f("pk_employee_erasures")),
    )
    op.create_index(op.f("ix_employee_erasures_employee_id_erased_at"), "employee_erasures",
                    ["employee_id", "erased_at"])


def downgrade() -> None:
    """Drop ``employee_erasures``."""
    op.drop_index(op.f("ix_employee_erasures_employee_id_erased_at"), table_name="employee_erasures")
    op.drop_table("employee_erasures")
