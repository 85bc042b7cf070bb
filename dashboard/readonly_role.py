"""Create (or update) the PostgreSQL role the dashboard connects as: it reads everything and writes only its reads.

``DATABASE_URL=postgresql+psycopg://admin@host/db python3 -m dashboard.readonly_role --role futurisys_dashboard``
grants the predefined role ``pg_read_all_data`` (PostgreSQL 14+: SELECT on
every table, present and future) and makes the role's transactions read-only
by default; its one write privilege is INSERT on ``trace_reads``, where the
dashboard records who viewed or exported traces. INSERT, UPDATE and DELETE on
every other table are refused even in a read-write transaction. The password is read from ``--password-env``
(default ``FUTURISYS_DASHBOARD_PASSWORD``) or generated and printed once.
No migration creates roles: this is an administrator's command.
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from typing import Sequence

import sqlalchemy as sa
from psycopg import sql

from persistence.database.engine import normalize_url
from settings import settings

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def create_read_only_role(admin_url: str, role: str, password: str) -> str:
    """Create or update ``role`` as a read-only login on the database of ``admin_url``; returns its URL."""
    if not ROLE_NAME.match(role):
        raise ValueError(f"role name {role!r}: lower-case letters, digits and _ only")
    url = normalize_url(admin_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("a read-only role is a PostgreSQL feature; SQLite files are opened read-only by the dashboard")
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            exists = connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"),
                                        {"role": role}).scalar() is not None
            verb = "ALTER" if exists else "CREATE"
            with raw.cursor() as cursor:
                cursor.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)))
                cursor.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(role)))
                cursor.execute(sql.SQL("GRANT INSERT ON trace_reads TO {}").format(sql.Identifier(role)))
                cursor.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                    sql.Identifier(role)))
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
    url = create_read_only_role(admin_url, args.role, password)
    print(f"Role {args.role} can read, and write only the read log. Give the dashboard:\n"
          f"FUTURISYS_DASHBOARD_DATABASE_URL={url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
