"""Start the real app as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from assistant.core.config import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppProcess:
    def __init__(self, data_dir: Path, *, provider: str = "local", port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = {**os.environ, "TAILOR_DATA_DIR": str(data_dir), "TAILOR_PORT": str(self.port),
                    "TAILOR_LLM_PROVIDER": provider, "GRADIO_ANALYTICS_ENABLED": "False",
                    "NO_PROXY": "127.0.0.1,localhost", "TAILOR_AUTO_BUILD_SEGMENTS": "false",
                    **(env or {})}
        self.log_path = data_dir / f"app-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.killed = False  # stop() had to SIGKILL it (SIGTERM was not enough)

    def start(self, timeout: float = 120) -> AppProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant.cli", "serve"], cwd=REPO_ROOT, env=self.env,
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"app did not answer on {self.url} within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


PASSWORD = "correct-horse-42"


def add_user(data_dir: Path, name: str, role: str, password: str = PASSWORD) -> None:
    """A staff user in the app's store (what `assistant users add` writes)."""
    from assistant.infra.store import Store
    from assistant.infra.users import UserStore

    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir / "tailor.sqlite3")
    try:
        UserStore(store).add(name, password, role)
    finally:
        store.close()
