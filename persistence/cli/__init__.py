"""The command line over the database, the trace pipeline and personal data (``python -m persistence ...``).

The top of ``persistence``: it may import every other sub-package; none imports it.
"""
