"""Where prediction traces and imported employees are stored.

``schema`` (SQLAlchemy models), ``database`` (engines), ``migrate`` (Alembic),
``traces`` (the trace record), ``writer`` (group commit + local journal),
``dataset`` (import of the HR extracts), ``queries`` (reads of the trace).
Importing this package imports none of them: the dashboard takes only what
it reads.
"""
