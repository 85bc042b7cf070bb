"""The trace pipeline, how an answer's trace becomes durable: the group-commit writer (``writer``, its queue
``group_queue`` and its ``commit_policy``), the journal while the database is away (``journal``, the file format
``journal_format``), its ``replay``, the ``store`` (COPY / executemany), ``stats`` and Prometheus ``metrics``.

It may import ``persistence.database``, ``settings`` and ``attrition``.
"""
