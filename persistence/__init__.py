"""Where prediction traces, imported employees and the read log are stored: one sub-package per concern.

``database`` (engine, schema, migrations, dataset import, read queries) is at
the bottom; ``trace`` (the pipeline that makes an answer's trace durable) and
``personal_data`` (erasure, retention, the read log) stand on it, personal
data above the trace pipeline since an erasure reaches the journals too;
``cli`` (``python -m persistence ...``) is on top. No sub-package imports one
above it (``lint-imports`` holds this). Importing this package imports none
of them: the dashboard takes only what it reads.
"""
