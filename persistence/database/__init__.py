"""The trace database: engine and URL (``engine``), the tables (``schema``, ``columns``, and ``traces``, the one
declaration of a trace's columns, with ``fitting``, its checks), Alembic migrations (``migrate``, ``migrations/``),
the import of the HR extracts (``dataset``), the read queries (``queries``, ``tombstones``).

It may import ``settings`` and ``attrition`` only, nothing else of ``persistence``.
"""
