"""Keep each request's inputs on PostgreSQL as the JSON text the service wrote (json, not jsonb).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

The trace is an audit record: the inputs are written once and read back
whole, never queried by key inside the database. ``json`` stores the text
as written; ``jsonb`` parsed and re-encoded every trace on insert, which was
a fifth of PostgreSQL's CPU per trace in group commits. SQLite keeps JSON
text either way.
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENT = "The 30 fields the model was given."


def upgrade() -> None:
    """``prediction_requests.inputs``: jsonb → json on PostgreSQL."""
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("prediction_requests", "inputs", type_=postgresql.JSON(), existing_type=postgresql.JSONB(),
                        existing_nullable=False, existing_comment=COMMENT, postgresql_using="inputs::json")


def downgrade() -> None:
    """``prediction_requests.inputs``: json → jsonb on PostgreSQL."""
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("prediction_requests", "inputs", type_=postgresql.JSONB(), existing_type=postgresql.JSON(),
                        existing_nullable=False, existing_comment=COMMENT, postgresql_using="inputs::jsonb")
