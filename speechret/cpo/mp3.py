"""The MP3 compression round trip through libsndfile's LAME encoder and mpg123 decoder.

Paper A §5.2 Table 4 and paper B §V-C Table 3 compress the queries to MP3 (128 kbps);
:func:`mp3_compression_level` maps a bitrate to libsndfile's ``compression_level`` and
:class:`MP3RoundTrip` encodes / decodes each utterance in memory, time-aligned with its input.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import torch

from speechret.cpo.base import CPO
from speechret.errors import ConfigError

__all__ = ["MP3RoundTrip", "mp3_compression_level"]


def _mp3_bitrate_range(sample_rate: int) -> tuple[int, int]:
    """libsndfile's CBR bitrate range (kbps) for the MPEG version it picks at this rate."""
    if sample_rate >= 32000:
        return 32, 320  # MPEG-1 Layer III
    if sample_rate >= 16000:
        return 8, 160  # MPEG-2 Layer III
    return 8, 64  # MPEG-2.5 Layer III


def mp3_compression_level(bitrate_kbps: int, sample_rate: int = 16000) -> float:
    """soundfile ``compression_level`` giving a constant ``bitrate_kbps`` at ``sample_rate``.

    For constant / average bitrate, libsndfile (``mpeg_l3_encoder_set_quality``) maps a
    compression level ``c`` in [0, 1] to ``bitrate = int(max - c * (max - min))`` kbps, with
    ``[min, max] = [32, 320]`` (MPEG-1, >= 32 kHz), ``[8, 160]`` (MPEG-2, 16-24 kHz) or ``[8, 64]``
    (MPEG-2.5). We invert it aiming half a kbps above the target so the integer truncation lands
    on it: at 16 kHz, 128 kbps is ``c = (160 - 128.5) / 152 ≈ 0.2072``.
    """
    lo, hi = _mp3_bitrate_range(int(sample_rate))
    if not lo <= bitrate_kbps <= hi:
        raise ConfigError(f"MP3 bitrate {bitrate_kbps} kbps impossible at {sample_rate} Hz "
                          f"(libsndfile/LAME range {lo}-{hi} kbps)")
    return float(min(1.0, max(0.0, (hi - bitrate_kbps - 0.5) / (hi - lo))))


class MP3RoundTrip(CPO):
    """MP3 compression round trip at ``bitrate_kbps`` (paper A §5.2 Table 4, "MP3 compression
    (128 kbps)"; paper B §V-C Table 3, "MP3").

    Each utterance is encoded by libsndfile/LAME into an in-memory MP3 (constant bitrate, see
    :func:`mp3_compression_level` for the bitrate mapping; at 16 kHz that is MPEG-2 Layer III,
    whose range is 8-160 kbps) and decoded back. ``encode`` / ``decode`` are exposed so the real
    bitrate can be checked from the encoded size.

    Alignment: LAME delays the signal by 576 samples (encoder) + 529 (MDCT / decoder) = 1105 and
    pads the end. libsndfile writes a LAME/Info tag with these numbers and its mpg123 decoder
    trims them, giving a time-aligned stream of exactly the input length (verified by
    cross-correlation). When the tag is missing (it does not fit in a frame at low bitrates,
    roughly <= 40 kbps at 16 kHz), the decoded stream is longer and we drop the known 1105-sample
    delay ourselves. The output is cropped / zero-padded to the input length.

    The codec runs on the CPU, one utterance at a time (libsndfile encodes a single stream per
    file), so this op loops over the batch; it is the slowest CPO (a few ms per second of audio).
    """

    ENCODER_DELAY = 576 + 529

    def __init__(self, bitrate_kbps: int = 128, sample_rate: int = 16000) -> None:
        if "MP3" not in sf.available_formats():
            raise RuntimeError(f"libsndfile {sf.__libsndfile_version__} was built without MP3 "
                               f"support; MP3RoundTrip needs libsndfile >= 1.1 with mpg123/LAME")
        self.bitrate_kbps = int(bitrate_kbps)
        self.sample_rate = int(sample_rate)
        self.compression_level = mp3_compression_level(self.bitrate_kbps, self.sample_rate)
        self.name = f"mp3_{self.bitrate_kbps}k"

    def encode(self, wave: np.ndarray) -> bytes:
        """MP3 bytes of a mono float wave (CBR at ``bitrate_kbps``)."""
        buf = io.BytesIO()
        sf.write(buf, np.asarray(wave, dtype=np.float32), self.sample_rate, format="MP3",
                 subtype="MPEG_LAYER_III", compression_level=self.compression_level,
                 bitrate_mode="CONSTANT")
        return buf.getvalue()

    def decode(self, data: bytes, n: int) -> np.ndarray:
        """Decode MP3 bytes to a float32 wave time-aligned with the ``n``-sample input."""
        y, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
        if y.shape[0] != n:  # no gapless tag: remove the codec delay ourselves
            y = y[self.ENCODER_DELAY:]
        out = np.zeros(n, dtype=np.float32)
        m = min(n, y.shape[0])
        out[:m] = y[:m]
        return out

    def roundtrip(self, wave: np.ndarray) -> np.ndarray:
        w = np.asarray(wave, dtype=np.float32)
        if w.size == 0:
            return w.copy()
        return self.decode(self.encode(w), w.size)

    def _apply(self, x, generator, lengths, mask):
        xs = x.detach().cpu().numpy()
        out = np.zeros_like(xs)
        n = xs.shape[-1]
        for i in range(xs.shape[0]):
            m = int(lengths[i]) if lengths is not None else n
            if m > 0:
                out[i, :m] = self.roundtrip(xs[i, :m])
        return torch.from_numpy(out).to(x.device)
