"""Post-processing of synthesised speech: silence trimming and the 16-bit PCM WAV writer.

Resampling 22,050 Hz → 16 kHz is :func:`speechret.audio.resample` (polyphase,
``scipy.signal.resample_poly(x, 320, 441)``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from speechret.audio import to_pcm16

__all__ = ["trim", "write_wav16"]


def trim(x: np.ndarray, sr: int, threshold_db: float = -40.0) -> np.ndarray:
    """Cut leading/trailing parts whose 10 ms RMS is ``threshold_db`` below the loudest frame."""
    hop = max(1, sr // 100)
    n = len(x) // hop
    if n < 2:
        return x
    frames = x[: n * hop].reshape(n, hop)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-12
    db = 20 * np.log10(rms / rms.max())
    active = np.flatnonzero(db > threshold_db)
    if active.size == 0:
        return x
    start = max(0, (active[0] - 1) * hop)  # keep one frame of onset
    end = min(len(x), (active[-1] + 2) * hop)
    return x[start:end]


def write_wav16(path: Path, x: np.ndarray, sr: int) -> None:
    """Write a float wave in [-1, 1) as a mono 16-bit PCM WAV (temp file + rename).

    The float → int16 conversion is :func:`speechret.audio.to_pcm16` (×32768, rounded, clipped),
    done here and not by libsndfile: libsndfile's own float → ``PCM_16`` conversion scales and
    rounds differently (up to 1 LSB off), and the corpus's files must stay bit-exact with the ones
    earlier versions wrote (same samples, same 44-byte header), so that a corpus generated before
    and after an upgrade is the same data (:func:`~speechret.data.synthetic.corpus_fingerprint`).
    soundfile reads such a file back as ``int16 / 32768``, i.e. exactly the samples written.
    """
    tmp = path.with_name(path.name + ".tmp")
    sf.write(tmp, to_pcm16(x), sr, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
