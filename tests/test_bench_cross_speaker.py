"""bench/cross_speaker.py's own measures (the runs themselves are benchmarks, not tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from cross_speaker import homophone_shares  # noqa: E402


def test_homophone_confusion_shares_tied_nearest_items():
    """bench/cross_speaker.py's near-homophone confusion: a 上海 item whose nearest other-speaker
    items are one 上海 and one 商行 at the same distance counts half a confusion, whatever their order
    (a first-index argmin gave 0 or 1 by database order); same-speaker items never count."""
    text = np.array(["上海", "上海", "商行", "商行"])
    spk = np.array(["a", "b", "c", "a"])
    d = np.array([[0.0, 0.1, 0.1, 0.0],    # nearest other-speaker: 上海 (b) and 商行 (c), tied
                  [0.1, 0.0, 0.3, 0.2],    # 上海 (a)
                  [0.1, 0.3, 0.0, 0.2],    # 上海 (a)
                  [0.0, 0.2, 0.2, 0.0]])   # 上海 (b) and 商行 (c), tied
    got = homophone_shares(d, text, spk)
    assert got["上海/商行"] == pytest.approx((0.5 + 0 + 1 + 0.5) / 4)
    order = np.array([2, 3, 0, 1])
    assert homophone_shares(d[np.ix_(order, order)], text[order], spk[order]) == got
