"""Start the service as a child process on 127.0.0.1 and stop it: what the tests and
``bench/service_load.py`` use to talk to a real server (uvicorn, real sockets, real process).

:class:`ServerProcess` runs ``python -m speechret.service library=<dir> port=<free port>
tokens.read_file=... tokens.write_file=...`` with stdout / stderr going to a log file, waits (up
to ``start_timeout`` s) until ``GET /health`` answers, and on :meth:`stop` (or leaving the
``with`` block) terminates it -- SIGTERM, then SIGKILL after ``stop_timeout`` s. :meth:`kill`
sends SIGKILL at once (the crash tests).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ServerProcess", "free_port"]

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One service process (see the module docstring). ``overrides``: more ``conf/serve.yaml``
    overrides (``readers=4``, ``limits.max_items=8``...)."""

    def __init__(self, library: str | os.PathLike, read_token_file: str | os.PathLike,
                 write_token_file: str | os.PathLike, log_file: str | os.PathLike, port: int | None = None,
                 overrides: tuple[str, ...] = (), start_timeout: float = 90.0, stop_timeout: float = 10.0,
                 env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None):
        self.library, self.log_file = Path(library), Path(log_file)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "speechret.service", f"library={self.library}", "host=127.0.0.1",
                     f"port={self.port}", f"tokens.read_file={read_token_file}",
                     f"tokens.write_file={write_token_file}", *overrides]
        self.start_timeout, self.stop_timeout = float(start_timeout), float(stop_timeout)
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.cwd = Path(cwd) if cwd is not None else REPO  # where relative paths (a milvus-lite file) resolve
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.args, cwd=str(self.cwd), stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited with status {self.proc.returncode} while starting; "
                                   f"its log ({self.log_file}):\n{self.log_file.read_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the service did not answer /health within {self.start_timeout:.0f} s; its log:\n"
                           f"{self.log_file.read_text()[-4000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, no flush (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=self.stop_timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
