"""Personal data: erasure of an employee's data everywhere, with tombstones (``erasure``), retention of traces
(``retention``), the log of who read which traces (``reads``).

It may import ``persistence.database``, ``persistence.trace`` (an erasure scrubs the journals), ``settings`` and
``attrition``.
"""
