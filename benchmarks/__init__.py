"""Load benchmark of the service against the usual one-row, one-transaction-per-request design."""
