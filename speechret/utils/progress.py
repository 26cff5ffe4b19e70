"""Progress for the slow steps (evaluation encoding, baselines, plots, corpus generation).

A ``rich.progress`` bar on stderr -- the library the project already uses for indexing
(:func:`speechret.library.indexer.index_items`) -- shown only when stderr is a terminal.  In a
log file (not a TTY) the bar would be noise, so the step writes one ``INFO`` line when it starts
and one with its wall time when it ends instead; ``SPEECHRET_PROGRESS=0`` turns bars off,
``SPEECHRET_PROGRESS=1`` forces them on (a terminal that does not say it is one).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ENV = "SPEECHRET_PROGRESS"
#: bars being drawn now: rich allows one live display at a time, so a step inside another
#: step's bar (encoding inside the hash-length study's loop over checkpoints) logs instead
_live = 0


def bars_enabled(stream: Any = None) -> bool:
    """Whether progress bars are drawn: ``$SPEECHRET_PROGRESS`` (0/1) if set, else whether
    ``stream`` (default stderr) is a terminal."""
    flag = os.environ.get(ENV, "").strip().lower()
    if flag in {"0", "false", "no", "off"}:
        return False
    if flag in {"1", "true", "yes", "on"}:
        return True
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


class _Step:
    """Handle of a running step: ``advance(n)`` moves the bar (no-op without one)."""

    def __init__(self, bar: Any = None, task: Any = None) -> None:
        self._bar, self._task = bar, task
        self.completed = 0

    def advance(self, n: float = 1) -> None:
        self.completed += n
        if self._bar is not None:
            self._bar.advance(self._task, n)


@contextmanager
def progress(description: str, total: float | None, logger: logging.Logger | None = None,
             enabled: bool | None = None) -> Iterator[_Step]:
    """``with progress("dtw distances", total=n) as p: ... p.advance(k)``.

    With a terminal (:func:`bars_enabled`, or ``enabled=True``): a transient rich bar on stderr
    (description, bar, done/total, elapsed, time remaining).  Otherwise, and inside another
    step's bar: ``logger.info`` lines
    "<description>: <total> ..." at the start and "<description>: done in <s> s" at the end."""
    global _live
    logger = logger or logging.getLogger("speechret.progress")
    show = (bars_enabled() if enabled is None else enabled) and _live == 0
    t0 = time.perf_counter()
    if not show:
        logger.info("%s: %s", description, f"{total:g} to do" if total is not None else "started")
        step = _Step()
        yield step
        logger.info("%s: done in %.1f s", description, time.perf_counter() - t0)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    _live += 1
    try:
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield _Step(bar, task)
    finally:
        _live -= 1
    logger.info("%s: done in %.1f s", description, time.perf_counter() - t0)
