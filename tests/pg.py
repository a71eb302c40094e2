"""A throwaway PostgreSQL cluster for tests: initdb into a temporary folder, start on a free port.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (runuser).
The binaries come from `pg_config --bindir`, else /usr/lib/postgresql/*/bin; `make test`
installs the Debian package when neither exists. Durability settings are relaxed (fsync off):
the tests restart and kill roomc, and stop PostgreSQL cleanly, but never crash the machine.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def bindir() -> Path:
    """Where initdb and pg_ctl are; raises with the fix when PostgreSQL is not installed."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    raise RuntimeError("PostgreSQL server binaries not found (initdb, pg_ctl): run `make test`, which installs "
                       "them (apt-get install postgresql), or install PostgreSQL 15")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """One running PostgreSQL server owned by the test session."""

    root: Path
    port: int
    bin: Path
    as_postgres: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://roomc@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls) -> "Cluster":
        """initdb and start a new cluster; raises RuntimeError with PostgreSQL's log when it cannot."""
        binaries = bindir()
        root = Path(tempfile.mkdtemp(prefix="roomc-pg-"))
        as_postgres: list[str] = []
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)
            as_postgres = ["runuser", "-u", "postgres", "--"]
        cluster = cls(root, free_port(), binaries, as_postgres)
        init = cluster._run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "roomc", "-E", "UTF8",
                            "--no-sync")
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stdout}{init.stderr}")
        cluster.start_server()
        return cluster

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_postgres, str(self.bin / tool), *args], capture_output=True, text=True,
                              timeout=120)

    def start_server(self) -> None:
        """pg_ctl start (again, after `stop_server`), on the same port and data."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB")
        started = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options,
                            "-w", "-t", "60", "start")
        if started.returncode != 0:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {started.stdout}{started.stderr}\n{log[-3000:]}")

    def stop_server(self) -> None:
        """pg_ctl stop -m fast: every connection is closed, as in a restart or a failover."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
