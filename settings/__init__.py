"""Every knob of the service, read once from the environment.

Imports nothing of the project but the domain (``attrition/``) and its own
``settings.keys`` (the parsing of ``FUTURISYS_API_KEYS``).
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from settings.keys import ApiKey, parse_keys

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SERVICE_NAME = "futurisys-attrition"
SERVICE_VERSION = "1.0.0"


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "share" / "futurisys"


def _served_port() -> str:
    """The port this BentoML server listens on: ``BENTOML_PORT``, the URL BentoML gives its workers, or 3000."""
    import json
    import os
    from urllib.parse import urlsplit

    if os.environ.get("BENTOML_PORT"):
        return os.environ["BENTOML_PORT"]
    try:  # every worker of `bentoml serve` gets {service name: its served URL}
        urls = json.loads(os.environ.get("BENTOML_RUNNER_MAP", "{}"))
        port = urlsplit(urls[SERVICE_NAME]).port
    except (ValueError, KeyError, TypeError, AttributeError):
        port = None
    return str(port or 3000)


class Settings(BaseSettings):
    """Configuration from environment variables (``FUTURISYS_*``, plus ``DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="FUTURISYS_", extra="ignore")

    database_url: str | None = Field(
        default=None, validation_alias="DATABASE_URL",
        description="SQLAlchemy URL of the trace database; unset: an embedded SQLite file in state_dir.")
    state_dir: Path = Field(default_factory=_default_state_dir,
                            description="Where the embedded SQLite file, the journals and locks live.")
    models_dir: Path = Field(default=PROJECT_ROOT / "models",
                             description="The versioned model artifacts imported into the BentoML store.")
    trusted_manifest: Path = Field(
        default=PROJECT_ROOT / "registry" / "trusted_artifacts.json",
        description="The sha256 of every model artifact the service may unpickle (registry/trust.py); an "
                    "operator's own manifest replaces the committed one.")
    default_model: str | None = Field(default=None,
                                      description="Model served when a request names none; unset: the champion.")
    # Access: keys as hashes with scopes (settings/keys.py); refused at start in any other form.
    api_keys: str = Field(
        default="", description="Comma-separated id:sha256hex:scope+scope entries (python -m api keys create); "
                                "empty: no keys, and trace reads answer loopback clients only.")
    metrics_open: bool = Field(default=True, description="/metrics answers without a key (false: any valid key).")

    @field_validator("api_keys")
    @classmethod
    def _keys_are_entries(cls, value: str) -> str:
        parse_keys(value)  # raises KeyConfigurationError, which names the entry at fault but never repeats it
        return value

    @property
    def api_key_entries(self) -> tuple[ApiKey, ...]:
        """The configured keys (:class:`settings.keys.ApiKey`; empty: no keys)."""
        return parse_keys(self.api_keys)

    tracing: bool = Field(default=True, description="Write a trace of every prediction (off only for benchmarks).")
    access_log: bool = Field(default=True, description="BentoML per-request access log (costs throughput).")
    workers: int = Field(default=1, ge=1, description="BentoML worker processes.")
    max_batch_size: int = Field(default=2048, ge=1,
                                description="Rows per model call when batching concurrent requests.")
    max_latency_ms: float = Field(default=2.0, ge=0,
                                  description="How long a runner waits to fill a batch once a row arrives.")
    recycle_connections_every: int = Field(
        default=100, ge=0, description="Close a keep-alive connection every N answers so workers share clients "
                                       "(0: never).")
    request_timeout_s: float = Field(
        default=10.0, gt=0, description="Answer 504 to a request not answered within this time. BentoML keeps "
                                        "each request's context until its timer fires: a shorter timeout holds "
                                        "less memory under load.")
    switch_interval_ms: float = Field(
        default=1.0, gt=0, description="Python's thread switch interval in the workers (CPython's default: 5 ms); "
                                       "shorter lets the event loop take the GIL back from the runners' "
                                       "threads sooner.")
    max_batch_rows: int = Field(default=1000, ge=1, description="Row cap of /predict_batch (over it: 413).")
    writer_max_rows: int = Field(default=2000, ge=1, description="Traces per group commit at most.")
    writer_queue_size: int = Field(default=10_000, ge=1,
                                   description="Traces waiting for a commit before requests wait (back-pressure).")
    replay_interval_s: float = Field(default=2.0, gt=0, description="How often journaled traces are replayed.")
    # Bounded time on the database: a slow or hanging database is journaled around, never waited for.
    commit_deadline_ms: int = Field(
        default=2000, gt=0, description="A group commit not done within this time is journaled and answered; the "
                                        "writer then journals until a replay goes through again.")
    statement_timeout_ms: int = Field(
        default=30_000, ge=0, description="PostgreSQL statement_timeout of the pooled connections (reads, replays; "
                                          "0: none). The writer's own session uses the commit deadline.")
    lock_timeout_ms: int = Field(
        default=2000, ge=0, description="PostgreSQL lock_timeout of every connection: a locked table fails fast "
                                        "instead of queueing (0: none).")
    tcp_user_timeout_ms: int = Field(
        default=10_000, ge=0, description="libpq tcp_user_timeout: a connection whose packets go unacknowledged this "
                                          "long is closed (a silent network drop), with TCP keepalives on.")
    writer_max_restarts: int = Field(
        default=5, ge=0, description="Crashed writer tasks restarted within a minute before the worker reports "
                                     "unready.")
    # One journal per instance, bounded (persistence/trace/journal.py).
    instance_id: str | None = Field(
        default=None, description="Names this instance's journal directory (state_dir/journal/<id>); unset: "
                                  "<hostname>-<port>, the port from BENTOML_PORT or the served URL BentoML gives "
                                  "its workers (BENTOML_RUNNER_MAP), else 3000, BentoML's default.")
    journal_max_bytes: int = Field(
        default=1 << 30, ge=1, description="Bytes of journal one worker process holds at most; past it (or on a "
                                           "full disk) a request is refused with 503 and the worker turns unready.")
    quarantine_max_bytes: int = Field(
        default=64 << 20, ge=1, description="Bytes of quarantine files in a journal directory at most; past it a "
                                            "replay keeps the journal instead of quarantining from it.")
    trace_retention_days: int | None = Field(
        default=None, ge=1, description="Traces older than this are deleted by `python -m persistence purge`; "
                                        "unset: every trace is kept (the EU AI Act asks for six months at least).")

    dashboard_database_url: str | None = Field(
        default=None, validation_alias="FUTURISYS_DASHBOARD_DATABASE_URL",
        description="Database the dashboard reads (ideally as a read-only role); unset: the service's database.")
    dashboard_cache_ttl_s: float = Field(default=30.0, gt=0,
                                         description="How long the dashboard keeps a query's result.")
    drift_min_rows: int = Field(default=100, ge=1,
                                description="Live rows a model version needs before the Drift page gives a verdict.")
    drift_max_rows: int = Field(default=50_000, ge=1,
                                description="Most recent traces per model version the Drift page reads (a sample "
                                            "beyond it).")
    outcome_horizon_days: int = Field(default=365, ge=1,
                                      description="How old a forecast may be (from its prediction to the day its "
                                                  "outcome became known) to be judged by that outcome.")
    evaluation_min_labelled: int = Field(default=30, ge=1,
                                         description="Labelled predictions a model version needs before the "
                                                     "Evaluation page gives a verdict.")
    evaluation_max_rows: int = Field(default=50_000, ge=1,
                                     description="Most recent predictions per window the Fairness page reads.")
    comparison_max_rows: int = Field(default=5_000, ge=1,
                                     description="Most recent traced inputs the Comparison page re-scores with every "
                                                 "model version.")
    dashboard_max_export_rows: int = Field(default=100_000, ge=1,
                                           description="Row cap of the Predictions page's CSV export.")
    browser_path: Path = Field(default=Path("/usr/bin/chromium"),
                               description="Chromium or Chrome used by the dashboard's browser test.")

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force: ``DATABASE_URL`` or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.state_dir / 'futurisys.db'}"

    @property
    def journal_dir(self) -> Path:
        """Where the journal directories of every instance live (``state_dir/journal``)."""
        return self.state_dir / "journal"

    @property
    def instance_journal_dir(self) -> Path:
        """This instance's directory of per-process trace journals: ``state_dir/journal/<instance id>``."""
        return self.journal_dir / self.resolved_instance_id

    @property
    def resolved_instance_id(self) -> str:
        """``instance_id``, or ``<hostname>-<port>`` of the BentoML server this process serves (file-name safe)."""
        import re
        import socket

        return re.sub(r"[^A-Za-z0-9._-]", "_", self.instance_id or f"{socket.gethostname()}-{_served_port()}")


settings = Settings()
