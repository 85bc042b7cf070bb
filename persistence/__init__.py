"""Where prediction traces and imported employees are stored.

``traces`` (the trace record: the one declaration of its columns),
``schema`` (the tables), ``columns`` (shared column types), ``database``
(engines), ``migrate`` (Alembic), ``writer`` (group commit), ``journal`` (the
local journal while the database is unreachable), ``replay`` (journal →
database), ``store`` (COPY / executemany), ``dataset`` (import of the HR
extracts), ``queries`` (reads of the trace).
Importing this package imports none of them: the dashboard takes only what
it reads.
"""
