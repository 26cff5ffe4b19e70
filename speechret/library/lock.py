"""The library's writer lock: an exclusive ``flock(2)`` on ``<lib>/.lock``.

Every writer (add, remove, rebuild, repair, saving an index generation) holds it while it
changes the library, so two writers never interleave: the second one waits (polling, up to
``timeout`` seconds) and then fails with a :class:`~speechret.library.store.LibraryError` that
names the library. The lock is advisory and per open file description, so two
:class:`LibraryLock` objects conflict even inside one process; one object is re-entrant (a
depth counter), so ``remove`` may call ``rebuild`` while holding it. The kernel drops the lock
when the holder dies (``kill -9`` included), so a crashed writer never leaves a stale lock.
SQLite's own ``BEGIN IMMEDIATE`` still serialises the row transactions underneath.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_NAME = ".lock"
#: seconds a writer waits for another one before giving up (``SPEECHRET_LOCK_TIMEOUT`` overrides)
DEFAULT_TIMEOUT = float(os.environ.get("SPEECHRET_LOCK_TIMEOUT", "120"))

__all__ = ["DEFAULT_TIMEOUT", "LOCK_NAME", "LibraryLock"]


class LibraryLock:
    """Exclusive, re-entrant writer lock of the library directory ``path``.

    ``error``: the exception class raised on a timeout (the library's ``LibraryError``)."""

    def __init__(self, path: str | os.PathLike, error: Callable[[str], Exception] = RuntimeError,
                 timeout: float | None = None, poll: float = 0.05):
        self.path = Path(path)
        self.error = error
        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        self.poll = poll
        self._fd: int | None = None
        self._depth = 0

    def acquire(self, timeout: float | None = None, blocking: bool = True) -> bool:
        """Take the lock (waiting up to ``timeout`` s); ``blocking=False`` returns False when busy."""
        if self._depth:
            self._depth += 1
            return True
        timeout = self.timeout if timeout is None else float(timeout)
        try:
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:  # a read-only library: readers go on without saving anything
            if not blocking:
                return False
            raise self.error(f"library {self.path}: cannot open its writer lock {LOCK_NAME} ({exc})") from exc
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not blocking or time.monotonic() >= deadline:
                    os.close(fd)
                    if not blocking:
                        return False
                    raise self.error(
                        f"library {self.path} is locked by another writer (index.py add / remove / rebuild / "
                        f"repair) and stayed locked for {timeout:.0f} s; wait for it to finish and retry "
                        f"(SPEECHRET_LOCK_TIMEOUT sets the wait)") from None
                time.sleep(self.poll)
        self._fd, self._depth = fd, 1
        return True

    def release(self) -> None:
        if not self._depth:
            return
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def __call__(self, timeout: float | None = None) -> Iterator[None]:
        self.acquire(timeout)
        try:
            yield
        finally:
            self.release()

    @contextlib.contextmanager
    def try_hold(self) -> Iterator[bool]:
        """Hold the lock if it is free right now (yields True), else yield False without waiting."""
        got = self.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self.release()
