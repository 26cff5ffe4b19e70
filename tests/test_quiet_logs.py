"""Quiet logs and visible progress (issue 15): no faiss.loader INFO lines on import; long
evaluation steps (encoding, the DTW baseline's distances) report progress -- a rich bar on a
terminal, a start and an end log line otherwise -- without changing their results."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speechret.evaluate import retrieval
from speechret.utils import progress as P

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["speechret.search.index", "speechret.evaluate.timing", "speechret.library.fsck"])
def test_importing_faiss_users_logs_no_faiss_loader_info(module):
    code = ("import logging; logging.basicConfig(level=logging.DEBUG, format='%(name)s:%(message)s'); "
            f"import {module}; import faiss; logging.getLogger('probe').info('root handler works')")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "probe:root handler works" in res.stderr  # INFO records do reach the handler...
    assert "faiss.loader" not in res.stderr  # ...but faiss' loader sends none


def test_bars_follow_the_terminal_and_the_environment(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv(P.ENV, raising=False)
    assert P.bars_enabled(Tty()) is True
    assert P.bars_enabled(object()) is False  # a log file, a pipe
    monkeypatch.setenv(P.ENV, "0")
    assert P.bars_enabled(Tty()) is False
    monkeypatch.setenv(P.ENV, "1")
    assert P.bars_enabled(object()) is True


def test_without_a_terminal_a_step_logs_its_start_and_end(caplog):
    with caplog.at_level(logging.INFO, logger="speechret.progress"):
        with P.progress("dtw distances", total=40, enabled=False) as bar:
            bar.advance(40)
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs[0] == "dtw distances: 40 to do" and msgs[1].startswith("dtw distances: done in ")
    assert bar.completed == 40


def test_on_a_terminal_the_bar_goes_to_stderr(capsys):
    with P.progress("encoding", total=3, enabled=True) as bar:
        for _ in range(3):
            bar.advance()
    out, err = capsys.readouterr()
    assert out == "" and bar.completed == 3


class Toy:
    """A retrieval system whose distances are |q - d| of scalar 'encodings'."""

    name = "toy"

    def __init__(self):
        self.encode_calls = 0
        self.distance_calls = 0

    def encode(self, waves):
        self.encode_calls += 1
        return [float(np.mean(w)) for w in waves]

    def distances(self, q, db, mode="full"):
        self.distance_calls += 1
        return np.abs(np.asarray(q)[:, None] - np.asarray(db)[None, :])


def test_chunked_encoding_and_blocked_distances_equal_one_call(caplog):
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(50).astype(np.float32) for _ in range(600)]
    toy = Toy()
    with caplog.at_level(logging.INFO, logger=retrieval.log.name):
        enc = retrieval._encode(toy, waves, "database")
        D = retrieval._distances(toy, enc[:300], enc, "full")
    assert toy.encode_calls == -(-600 // retrieval.ENCODE_CHUNK) and enc == Toy().encode(waves)
    assert toy.distance_calls == retrieval.DISTANCE_BLOCKS
    np.testing.assert_array_equal(D, Toy().distances(enc[:300], enc))
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert "toy: encoding database: 600 to do" in msgs and "toy: full distances, 300 x 600: done in" in msgs


def test_dtw_baseline_distances_in_blocks_equal_one_call(monkeypatch):
    from speechret.evaluate.baselines import DTWSystem

    rng = np.random.default_rng(1)
    dtw = DTWSystem()
    reps = dtw.encode([rng.standard_normal(1600 + 160 * (i % 5)).astype(np.float32) for i in range(12)])
    whole = dtw.distances(reps, reps, "full")
    monkeypatch.setattr(retrieval, "MIN_BLOCKED_PAIRS", 1)
    monkeypatch.setattr(retrieval, "DISTANCE_BLOCKS", 5)
    np.testing.assert_array_equal(retrieval._distances(dtw, reps, reps, "full"), whole)


def test_a_step_inside_another_steps_bar_logs_instead_of_drawing(caplog):
    """rich draws one live display at a time: the hash-length study's bar over checkpoints holds
    the encoding steps inside it, which then log (rich would raise LiveError on a second bar)."""
    with caplog.at_level(logging.INFO, logger="speechret.progress"):
        with P.progress("checkpoints", total=2, enabled=True) as outer:
            with P.progress("encoding", total=5, enabled=True) as inner:
                inner.advance(5)
            outer.advance()
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs[0] == "encoding: 5 to do" and msgs[1].startswith("encoding: done in")
    assert P._live == 0
