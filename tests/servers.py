"""Servers the scale-out tests start beside the app: a Chroma server (``chroma run``, from
the chromadb wheel) on a loopback port, with its data in a folder of the test's."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.apprunner import free_port


class ChromaServer:
    """``with ChromaServer(folder) as chroma: chroma.url``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ChromaServer:
        exe = Path(sys.executable).with_name("chroma")
        self.path.mkdir(parents=True, exist_ok=True)
        self._log = open(self.path.parent / f"chroma-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([str(exe), "run", "--path", str(self.path), "--host",
                                      "127.0.0.1", "--port", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the chroma server did not start on {self.url}")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()
