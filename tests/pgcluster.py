"""A throw-away PostgreSQL cluster that a test can stop and restart (database outages).

``initdb`` refuses to run as root, so under root every PostgreSQL command runs
as the ``postgres`` OS user (``runuser -u postgres --``) on a temporary
directory owned by that user; as any other user they run directly. The
cluster listens on 127.0.0.1 on a free port, with its socket in the same
temporary directory, and trusts local connections.

Use it as a context manager; the server is stopped and the directory removed
even when the test fails::

    available, why = cluster_available()
    need("pgcluster", available, why)
    with PostgresCluster() as cluster:
        engine = create_engine(cluster.url)
        cluster.stop()    # outage
        cluster.start()   # back
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

PG_BIN = Path(os.environ.get("FUTURISYS_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVICE_USER = "postgres"


def _as_root() -> bool:
    return os.geteuid() == 0


def cluster_available() -> tuple[bool, str]:
    """Whether a throw-away cluster can be created here, and why not."""
    for tool in ("initdb", "pg_ctl"):
        if not (PG_BIN / tool).is_file():
            return False, f"{PG_BIN / tool} not found (set FUTURISYS_PG_BIN)"
    if _as_root():
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return False, f"running as root and there is no {SERVICE_USER!r} user to run initdb"
        if shutil.which("runuser") is None:
            return False, "running as root and runuser is missing"
    return True, ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory: created and started on enter, destroyed on exit."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root: Path | None = None

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        assert self.root is not None, "the cluster is not created"
        return self.root / "data"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the cluster's ``postgres`` database, over TCP."""
        return f"postgresql+psycopg://{SERVICE_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", SERVICE_USER, "--"] if _as_root() else []
        return subprocess.run([*prefix, *command], check=check, capture_output=True, text=True, timeout=60)

    def create(self) -> None:
        """Make the temporary directory and ``initdb`` into it."""
        self.root = Path(tempfile.mkdtemp(prefix="futurisys-pgcluster-"))
        if _as_root():
            user = pwd.getpwnam(SERVICE_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        try:
            # --no-sync: a throw-away cluster does not need initdb's fsyncs (seconds saved).
            self._run(str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", SERVICE_USER,
                      "--auth=trust", "--encoding=UTF8", "--no-sync")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stderr or exc.stdout}") from exc

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c shared_buffers=16MB -c max_connections=40")
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.root / "server.log"),
                      "-o", options, "-w", "-t", "30", "start")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"pg_ctl start failed: {exc.stderr or exc.stdout}\n{self.server_log()}") from exc

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: open sessions are cut, as in a real outage) and wait until it is down."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "stop")

    def is_running(self) -> bool:
        """True while the server runs."""
        if self.root is None:
            return False
        return self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "status", check=False).returncode == 0

    def server_log(self) -> str:
        """The server's log so far (for failure messages)."""
        log = self.root / "server.log" if self.root else None
        return log.read_text(errors="replace") if log and log.exists() else ""

    def destroy(self) -> None:
        """Stop the server if it runs and remove the temporary directory."""
        if self.root is None:
            return
        try:
            if self.is_running():
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresCluster:
        try:
            self.create()
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.destroy()
