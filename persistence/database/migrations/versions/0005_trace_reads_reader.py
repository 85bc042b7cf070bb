"""The read log's reader, set by the database: who recorded a read, whatever the reader says about itself.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

``trace_reads.reader`` is the database role that inserted the row. On
PostgreSQL its default is ``current_user`` and the dashboard's role
(``python -m dashboard.readonly_role``) may insert every column of the read
log but this one: it cannot record a read under another name. Rows written
before this revision keep a null reader (the default is set after the
column is added, so they are not stamped with the migrating role's name);
SQLite has no roles: null there. Types are spelled out (not imported from
persistence.schema) so this revision stays what it was.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``trace_reads.reader``; on PostgreSQL, default it to ``current_user``."""
    op.add_column("trace_reads", sa.Column(
        "reader", sa.String(length=64), nullable=True,
        comment="The database role that recorded the read (PostgreSQL: current_user, not settable by the "
                "dashboard's role); null before revision 0005 and on SQLite."))
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("trace_reads", "reader", server_default=sa.text("CURRENT_USER"))


def downgrade() -> None:
    """Drop ``trace_reads.reader``."""
    op.drop_column("trace_reads", "reader")
