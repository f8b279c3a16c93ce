"""A throwaway PostgreSQL cluster for tests: Debian's server binaries, a data directory in a
temporary folder, a Unix socket there and a loopback port, started and stopped by the test.

``initdb`` refuses to run as root; as root the cluster runs as Debian's ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import uuid
from pathlib import Path

from tests.apprunner import free_port


def server_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PgCluster:
    """``PgCluster(tmp).start()``; ``url(db)`` for a database in it; ``stop()``."""

    def __init__(self, root: Path) -> None:
        bin_dir = server_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries are missing "
                               "(apt-get install postgresql)")
        self.bin = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.user = "tailor"
        self.password = "s3cret-" + uuid.uuid4().hex[:8]
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")  # Debian's package makes this user
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str | Path, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, *map(str, args)], check=True,
                              capture_output=True, text=True, **kwargs)

    def start(self) -> PgCluster:
        """Make the cluster (the first time) and start the server."""
        if self.data.exists():
            self._pg_ctl_start()
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self.as_user:
            shutil.chown(self.root, "postgres")
            shutil.chown(pwfile, "postgres")
        self._run(self.bin / "initdb", "-D", self.data, "-U", self.user, "--pwfile", pwfile,
                  "-A", "scram-sha-256", "-E", "UTF8", "--no-sync")
        self._pg_ctl_start()
        return self

    def _pg_ctl_start(self) -> None:
        # fsync off: a throwaway cluster need not survive a power cut, and it is faster
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-w",
                  "-t", "60", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c full_page_writes=off -c max_connections=200",
                  "start")

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        return (f"postgresql://{self.user}:{password or self.password}@127.0.0.1:{self.port}/"
                f"{database}")

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or "t_" + uuid.uuid4().hex[:12]
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as if it crashed); a stopped one is left as is."""
        if self.data.exists():
            subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data),
                            "-m", mode, "-w", "stop"], capture_output=True, text=True)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""
