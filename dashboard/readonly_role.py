"""Create (or update) the PostgreSQL role the dashboard connects as: least privilege, re-running revokes the rest.

``DATABASE_URL=postgresql+psycopg://admin@host/db python3 -m dashboard.readonly_role --role futurisys_dashboard``
gives the role, on the database of the URL, exactly:

- ``USAGE`` on the schema of the trace tables;
- ``SELECT`` on the tables the dashboard reads (:data:`READ_TABLES`, the one
  list: not the erasure tombstones, not the migration table, not the
  employees);
- ``INSERT`` on the columns of the read log the dashboard fills
  (:data:`READ_LOG_COLUMNS`): not ``reader``, which the database sets to
  ``current_user`` (revision 0005), so a read is never recorded under
  another name;

and nothing else: every other privilege of the role on the schema's tables,
sequences and functions, and every role it was made a member of (such as
``pg_read_all_data``, which earlier versions granted), is revoked first, in
the same transaction. Its transactions are read-only by default. What
PUBLIC holds (CONNECT and TEMPORARY on databases, PostgreSQL's catalogs) it
holds like every role. The password is read from ``--password-env``
(default ``FUTURISYS_DASHBOARD_PASSWORD``) or generated and printed once.
No migration creates roles: this is an administrator's command, to run
again after a migration that adds a table to :data:`READ_TABLES`.
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from typing import Any, Sequence

import sqlalchemy as sa
from psycopg import sql

from persistence.database.engine import normalize_url
from settings import settings

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

READ_TABLES: tuple[str, ...] = (
    "prediction_traces",
    "outcomes",
)
"""Every table the dashboard reads, and only those: the role's SELECT privileges. A table a page comes to read
joins here (and the command is run again)."""

READ_LOG = "trace_reads"
READ_LOG_COLUMNS: tuple[str, ...] = ("read_id", "read_at", "key_id", "route", "employee_id", "request_id",
                                     "parameters", "rows")
"""The read-log columns the dashboard writes (persistence.personal_data.reads.record_read): not ``reader``."""


class NotMigrated(RuntimeError):
    """A table the role must be granted does not exist yet: the database needs ``python -m persistence migrate``."""


def _revoke_everything(cursor: Any, role_name: str, schema: str) -> None:
    """Revoke every membership and every privilege of the role on the schema and its objects."""
    role = sql.Identifier(role_name)
    cursor.execute("SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
                   "JOIN pg_roles member ON member.oid = m.member WHERE member.rolname = %s", (role_name,))
    for (granted,) in cursor.fetchall():
        cursor.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(granted), role))
    for objects in ("ALL TABLES IN SCHEMA", "ALL SEQUENCES IN SCHEMA", "ALL FUNCTIONS IN SCHEMA", "SCHEMA"):
        # Revoking a table's privileges revokes its column privileges too (PostgreSQL's REVOKE).
        cursor.execute(sql.SQL("REVOKE ALL ON " + objects + " {} FROM {}").format(sql.Identifier(schema), role))


def _grant_listed(cursor: Any, role: sql.Identifier, schema: str) -> None:
    """USAGE on the schema, SELECT on :data:`READ_TABLES`, INSERT on :data:`READ_LOG_COLUMNS` of the read log."""
    cursor.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "WHERE n.nspname = %s AND c.relname = ANY(%s)", (schema, [*READ_TABLES, READ_LOG]))
    missing = set(READ_TABLES) | {READ_LOG}
    missing -= {name for (name,) in cursor.fetchall()}
    if missing:
        raise NotMigrated(f"no table {', '.join(sorted(missing))} in schema {schema}: run "
                          "`python -m persistence migrate` on this database first")
    cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role))
    for table in READ_TABLES:
        cursor.execute(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(sql.Identifier(schema, table), role))
    cursor.execute(sql.SQL("GRANT INSERT ({}) ON TABLE {} TO {}").format(
        sql.SQL(", ").join(map(sql.Identifier, READ_LOG_COLUMNS)), sql.Identifier(schema, READ_LOG), role))


def create_read_only_role(admin_url: str, role: str, password: str) -> str:
    """Create or update ``role`` with exactly the dashboard's privileges on the database of ``admin_url``; its URL.

    One transaction: the role holds its old privileges or its new ones,
    never a mix.
    """
    if not ROLE_NAME.match(role):
        raise ValueError(f"role name {role!r}: lower-case letters, digits and _ only")
    url = normalize_url(admin_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("a read-only role is a PostgreSQL feature; SQLite files are opened read-only by the dashboard")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            raw = connection.connection.dbapi_connection
            schema = connection.execute(sa.text("SELECT current_schema()")).scalar_one()
            exists = connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"),
                                        {"role": role}).scalar() is not None
            verb = "ALTER" if exists else "CREATE"
            name = sql.Identifier(role)
            with raw.cursor() as cursor:
                cursor.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                                              "NOBYPASSRLS PASSWORD {}").format(name, sql.Literal(password)))
                _revoke_everything(cursor, role, schema)
                _grant_listed(cursor, name, schema)
                cursor.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(name))
    finally:
        engine.dispose()
    return url.set(username=role, password=password).render_as_string(hide_password=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Create the role and print the URL to give the dashboard (``FUTURISYS_DASHBOARD_DATABASE_URL``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", default="futurisys_dashboard")
    parser.add_argument("--database-url", default=None,
                        help="an administrator's URL of the trace database (default: DATABASE_URL)")
    parser.add_argument("--password-env", default="FUTURISYS_DASHBOARD_PASSWORD",
                        help="environment variable holding the role's password (generated when unset)")
    args = parser.parse_args(argv)
    admin_url = args.database_url or settings.database_url
    if not admin_url:
        print("Give the administrator's URL of the PostgreSQL trace database (--database-url or DATABASE_URL).",
              file=sys.stderr)
        return 2
    password = os.environ.get(args.password_env) or secrets.token_urlsafe(24)
    try:
        url = create_read_only_role(admin_url, args.role, password)
    except NotMigrated as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Role {args.role} reads {', '.join(READ_TABLES)} and writes only the read log. Give the dashboard:\n"
          f"FUTURISYS_DASHBOARD_DATABASE_URL={url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
