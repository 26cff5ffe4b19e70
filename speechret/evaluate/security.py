"""Security evaluation of the speech ciphers (paper A §5.4: key space, Fig. 10, Table 7).

Paper A §5.4 judges its hyperchaotic speech cipher by

* the **key space** -- the initial values K = (x0, y0, z0, w0) as doubles "accurate to 12 decimal
  places", counted as 2×10^12 values per component: (2×10^12)^4 = 16×10^48 ≈ 2^164
  (:func:`key_space`, :func:`key_space_log2`);
* **Fig. 10** -- waveform and spectrogram of original vs encrypted speech: the encrypted speech is
  noise-like (:func:`ciphertext_as_audio` gives the ciphertext as a waveform, plotted by
  :func:`speechret.evaluate.plots.plot_waveform_spectrogram`); the usual numeric companion is the
  correlation of adjacent samples (:func:`adjacent_correlation`), ~1 for speech, ~0 for a good
  cipher;
* **Table 7** -- PESQ-MOS (ITU-T P.862) of the encrypted speech (0.8888, "1.0 or lower" expected)
  and of the decrypted speech (4.4997) against the original (:func:`pesq_mos`).

:func:`evaluate_cipher` runs all of it over a list of waves for any cipher of
:mod:`speechret.crypto` and returns one flat ``dict[str, float]``.

PESQ scale
----------
The ``pesq`` package (0.0.4, ludlows) always returns ``mapped_mos``: in ``"nb"`` mode the ITU-T
P.862.1 MOS-LQO mapping of the raw P.862 score (range 1.02…4.55; identical signals give 4.5486), in
``"wb"`` mode the P.862.2 MOS-LQO.  Paper A's Table 7 reports *raw* P.862 scores (range
−0.5…4.5: 0.8888 is impossible on the LQO scale, 4.4997 ≈ the raw maximum 4.5), so
:func:`pesq_mos` defaults to ``scale="raw"`` and recovers the raw score by inverting the mapping
(:func:`lqo_to_raw`)::

    P.862.1 (nb):  MOS_LQO = 0.999 + 4 / (1 + exp(−1.4945·x + 4.6607))
    P.862.2 (wb):  MOS_LQO = 0.999 + 4 / (1 + exp(−1.3669·x + 3.8224))
    inverse:       x = (c − ln(4 / (MOS_LQO − 0.999) − 1)) / s

The C code computes the mapping in float32, so the inverted raw score carries a float32 rounding
error (≲1e-5 at the low end, where the mapping is flat).  The raw score of the wb mode is the
model's output before the P.862.2 mapping (not a standardised reported quantity; P.862.2 only
defines the LQO); use ``scale="lqo"`` for wb reports.

Sample rates: the package accepts 8000 or 16000 Hz; ``"nb"`` works at both (P.862 defines
narrow-band operation at 8 and 16 kHz), ``"wb"`` only at 16000.  :func:`evaluate_cipher` scores the
16 kHz waves in nb mode at their native rate by default (``pesq_rate=None``, paper A's corpus is
16 kHz and the paper does not mention resampling); ``pesq_rate=8000`` resamples both signals with
:func:`speechret.audio.resample` first, ``pesq_mode="wb"`` gives P.862.2 scores.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from speechret.audio import to_pcm16

log = logging.getLogger(__name__)

__all__ = [
    "LQO_MAPPING",
    "adjacent_correlation",
    "ciphertext_as_audio",
    "evaluate_cipher",
    "key_space",
    "key_space_log2",
    "lqo_to_raw",
    "pesq_mos",
    "raw_to_lqo",
    "to_pcm16",
]

#: mode -> (slope s, offset c) of MOS_LQO = 0.999 + 4 / (1 + exp(−s·x + c)) (P.862.1 nb, P.862.2 wb).
LQO_MAPPING: dict[str, tuple[float, float]] = {"nb": (1.4945, 4.6607), "wb": (1.3669, 3.8224)}
_LQO_LOW, _LQO_SPAN = 0.999, 4.0


# ------------------------------------------------------------------------------------ helpers
def _as_float(x: np.ndarray, what: str) -> np.ndarray:
    """int16 -> /32768; floats as float64 (expected in [-1, 1]); 1-D."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D signal, got shape {arr.shape}")
    if arr.dtype == np.int16:
        return arr.astype(np.float64) / 32768.0
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{what}: expected float or int16 samples, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _nanmean(values: Sequence[float]) -> float:
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


# ------------------------------------------------------------------------------------ PESQ
def raw_to_lqo(raw: float, mode: str = "nb") -> float:
    """Raw P.862 score -> MOS-LQO (P.862.1 for ``"nb"``, P.862.2 for ``"wb"``)."""
    s, c = LQO_MAPPING[mode]
    return _LQO_LOW + _LQO_SPAN / (1.0 + math.exp(-s * float(raw) + c))


def lqo_to_raw(lqo: float, mode: str = "nb") -> float:
    """MOS-LQO -> raw P.862 score, the inverse of :func:`raw_to_lqo`.

    Values outside the mapping's open range (0.999, 4.999) are clipped just inside it."""
    s, c = LQO_MAPPING[mode]
    y = min(max(float(lqo), _LQO_LOW + 1e-9), _LQO_LOW + _LQO_SPAN - 1e-9)
    return (c - math.log(_LQO_SPAN / (y - _LQO_LOW) - 1.0)) / s


def pesq_mos(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = 16000, mode: str = "nb",
             scale: str = "raw") -> float:
    """PESQ (ITU-T P.862) of ``degraded`` against ``reference`` -- paper A Table 7's PESQ-MOS.

    ``reference`` / ``degraded``: 1-D float in [-1, 1] or int16, at ``sample_rate`` (8000 or 16000;
    ``"wb"`` needs 16000; no resampling here).  ``scale="raw"`` (default, paper A's scale,
    −0.5…4.5) or ``"lqo"`` (the package's MOS-LQO, P.862.1 / P.862.2).  See the module docstring.

    Never raises for a bad *signal*: when PESQ fails (no utterance detected -- e.g. silence --
    buffer shorter than 0.25 s, all-zero input, ...) a warning is logged and NaN returned.  A bad
    *argument* (mode, scale, sample rate) raises ``ValueError``."""
    if mode not in LQO_MAPPING:
        raise ValueError(f"mode must be 'nb' or 'wb', got {mode!r}")
    if scale not in ("raw", "lqo"):
        raise ValueError(f"scale must be 'raw' or 'lqo', got {scale!r}")
    sample_rate = int(sample_rate)
    if sample_rate not in (8000, 16000) or (mode == "wb" and sample_rate != 16000):
        raise ValueError(f"PESQ needs 8000 or 16000 Hz (wb: 16000 only), got {sample_rate} Hz in {mode!r} mode")
    from pesq import PesqError, pesq

    ref = _as_float(reference, "reference")
    deg = _as_float(degraded, "degraded")
    if not (np.isfinite(ref).all() and np.isfinite(deg).all()):
        log.warning("PESQ: non-finite samples; score is NaN")
        return float("nan")
    if not np.any(ref) or not np.any(deg):
        log.warning("PESQ: all-zero %s signal; score is NaN", "reference" if not np.any(ref) else "degraded")
        return float("nan")
    try:
        lqo = float(pesq(sample_rate, ref, deg, mode))
    except (PesqError, ValueError, ArithmeticError) as exc:
        log.warning("PESQ failed (%s: %s); score is NaN", type(exc).__name__, exc)
        return float("nan")
    if not math.isfinite(lqo):
        log.warning("PESQ returned %r; score is NaN", lqo)
        return float("nan")
    return lqo if scale == "lqo" else lqo_to_raw(lqo, mode)


# ------------------------------------------------------------------------------------ ciphertext
def _is_aes(cipher: Any) -> bool:
    return getattr(cipher, "name", None) == "aes_gcm"


def _cipher_samples_from_blob(cipher: Any, blob: bytes, n: int, item_id: str) -> np.ndarray:
    """The ciphertext body of a SpeechCipher blob as int16 (first ``n`` samples)."""
    if _is_aes(cipher):
        # magic(4) | version(1) | key id(8) | nonce(12) | ciphertext (2n bytes) | tag(16)
        from speechret.crypto.aead import _HEADER, TAG_BYTES

        body = bytes(blob)[_HEADER.size:len(blob) - TAG_BYTES]
        if len(body) != 2 * n:
            raise ValueError(f"item {item_id!r}: AES-GCM body has {len(body)} bytes, expected {2 * n}")
        return np.frombuffer(body, dtype="<i2").astype(np.int16)
    from speechret.crypto.base import unpack_chaotic_blob

    blob = bytes(blob)
    _, c = unpack_chaotic_blob(blob[:4], blob, item_id, multiple=int(getattr(cipher, "frame", 1)))
    return c[:n]


def ciphertext_as_audio(cipher: Any, pcm: np.ndarray, item_id: str = "x", blob: bytes | None = None) -> np.ndarray:
    """The ciphertext of ``pcm`` (int16) as a float32 waveform in [-1, 1), same length as ``pcm``.

    What paper A Fig. 10(c)/(d) shows as "encrypted speech".

    * Chaotic ciphers (``hyperchaotic``, ``rossler``): their sample API gives int16 cipher samples
      (16-bit words in two's complement), scaled by 1/32768.  Paper A's cipher pads to a multiple
      of 256 samples; the padded ciphertext is cut to the input length.
    * ``aes_gcm``: the blob's header (magic, version, key id, nonce) and trailing 16-byte tag are
      dropped and the ciphertext body (2 bytes per sample) is read as int16 little-endian.  Every
      call encrypts with a fresh nonce, so the waveform differs between calls.

    ``blob``: an already encrypted blob of ``pcm`` (``cipher.encrypt(item_id, pcm)``) to read
    instead of encrypting again."""
    from speechret.crypto.base import as_pcm16

    s = as_pcm16(pcm, f"item {item_id!r}")
    n = s.size
    if blob is not None:
        c = _cipher_samples_from_blob(cipher, blob, n, item_id)
    elif _is_aes(cipher):
        c = _cipher_samples_from_blob(cipher, cipher.encrypt(item_id, s), n, item_id)
    elif hasattr(cipher, "encrypt_bytes"):  # chaotic sample API: encrypt(samples) -> int16
        c = np.asarray(cipher.encrypt(s))[:n]
    else:
        out = cipher.encrypt(item_id, s)
        if isinstance(out, (bytes, bytearray, memoryview)):
            c = _cipher_samples_from_blob(cipher, bytes(out), n, item_id)
        else:
            c = np.asarray(out)[:n]
    c = np.asarray(c)
    if c.dtype == np.uint16:
        c = c.view(np.int16)
    return (c.astype(np.float32) / np.float32(32768.0)).astype(np.float32)


# ------------------------------------------------------------------------------------ correlation
def adjacent_correlation(x: np.ndarray) -> float:
    """Pearson correlation coefficient of adjacent-sample pairs (x[i], x[i+1]).

    Close to 1 for speech (strongly low-pass), close to 0 for a good cipher's output.  NaN for
    fewer than 3 samples or a constant signal."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size < 3:
        return float("nan")
    u, v = a[:-1], a[1:]
    u = u - u.mean()
    v = v - v.mean()
    den = math.sqrt(float(np.dot(u, u)) * float(np.dot(v, v)))
    if den == 0.0 or not math.isfinite(den):
        return float("nan")
    return float(np.clip(np.dot(u, v) / den, -1.0, 1.0))


# ------------------------------------------------------------------------------------ key space
def key_space_log2(n_components: int, decimals: int = 12, range_width: float = 2.0) -> float:
    """log2 of the key space of ``n_components`` reals, each ``range_width × 10^decimals`` values.

    Paper A §5.4's counting: 12 decimal places over a range of width 2 give 2×10^12 values per
    initial value; four of them give (2×10^12)^4 = 1.6×10^49, log2 = 163.45 (the paper rounds it
    to "≈ 2^164")."""
    if n_components < 0 or decimals < 0 or range_width <= 0:
        raise ValueError("n_components and decimals must be >= 0 and range_width > 0")
    return float(n_components) * (math.log2(range_width) + decimals * math.log2(10.0))


def key_space(cipher_name: Any) -> dict[str, Any]:
    """Key space of a cipher (a name or a cipher object with ``.name``).

    Returns ``{"cipher", "log2", "formula", "components", "note"}``.

    * ``hyperchaotic`` (paper A §5.4): K = (x0, y0, z0, w0), doubles to 12 decimal places, counted
      as 2×10^12 values each: 2×10^12 × 2×10^12 × 2×10^12 × 2×10^12 = 16×10^48 ≈ 2^163.45, which
      the paper writes as "≈ 2^164".  This is the paper's counting convention (range width 2 per
      component assumed); the system parameters a…e and the iteration settings would add more.
    * ``rossler`` (paper B; key = initial state [x0, y0, z0], see :mod:`speechret.crypto.rossler`):
      the same 12-decimal convention over 3 components, (2×10^12)^3 ≈ 2^122.6.
    * ``aes_gcm``: a 256-bit key, 2^256 (a passphrase key is only as strong as the passphrase)."""
    name = cipher_name if isinstance(cipher_name, str) else getattr(cipher_name, "name", None)
    if name == "hyperchaotic":
        lg = key_space_log2(4)
        return {"cipher": name, "log2": lg, "components": ["x0", "y0", "z0", "w0"],
                "formula": f"(2e12)^4 = 2e12 x 2e12 x 2e12 x 2e12 = 1.6e49 = 2^{lg:.2f} (paper A: ~2^164)",
                "note": "paper A §5.4 counting: doubles accurate to 12 decimal places, 2x10^12 values "
                        "per initial value; parameters a..e and iteration settings not counted"}
    if name == "rossler":
        lg = key_space_log2(3)
        return {"cipher": name, "log2": lg, "components": ["x0", "y0", "z0"],
                "formula": f"(2e12)^3 = 8e36 = 2^{lg:.2f}",
                "note": "paper A's 12-decimal convention applied to paper B's key [x0, y0, z0]; "
                        "parameters a, b, c and integration settings not counted"}
    if name == "aes_gcm":
        return {"cipher": name, "log2": 256.0, "components": ["key"], "formula": "2^256 (AES-256 key)",
                "note": "random 32-byte key file; a passphrase-derived key is bounded by the passphrase entropy"}
    raise ValueError(f"unknown cipher {cipher_name!r}; choose aes_gcm, hyperchaotic or rossler")


# ------------------------------------------------------------------------------------ evaluation
def evaluate_cipher(cipher: Any, waves: Sequence[np.ndarray], sample_rate: int = 16000, pesq_mode: str = "nb",
                    pesq_rate: int | None = None, pesq_scale: str = "raw", warmup: bool = True) -> dict[str, float]:
    """Paper A §5.4 / Table 7 / Fig. 10 security evaluation of ``cipher`` on ``waves``.

    For every wave (float32 in [-1, 1] at ``sample_rate``, or int16): PCM = :func:`to_pcm16`
    (what the library stores), ``blob = cipher.encrypt(item_id, pcm)``, ``cipher.decrypt(item_id,
    blob)``; the encrypted speech is the blob's ciphertext read as audio (:func:`ciphertext_as_audio`).

    PESQ (:func:`pesq_mos`, ``pesq_mode``, ``pesq_scale``) is computed at ``pesq_rate``: ``None`` =
    at ``sample_rate`` (must be 8000 or 16000; nb at 16 kHz is allowed by P.862 and the package),
    otherwise both signals are resampled with :func:`speechret.audio.resample` first (e.g. 8000
    for classic narrow-band PESQ).  The reference is the PCM itself (``pcm / 32768``).

    Returns (flat, floats):

    * ``pesq_encrypted`` / ``pesq_decrypted`` -- mean PESQ over the items where PESQ succeeded
      (NaN when it failed for all; ``pesq_encrypted_failed`` / ``pesq_decrypted_failed`` count
      the failures, e.g. "no utterance detected");
    * ``decrypt_bit_exact`` -- fraction of items decrypted bit-exactly (1.0 expected);
    * ``corr_original`` / ``corr_encrypted`` -- mean |adjacent-sample correlation|;
    * ``key_space_log2`` (:func:`key_space`), ``n_items``;
    * ``encrypt_x_realtime`` / ``decrypt_x_realtime`` -- audio seconds per wall-clock second
      (``warmup``: one untimed encrypt/decrypt of 0.1 s of audio first, so that one-off costs --
      numba compiling / loading the chaotic integrators -- are not counted).
    """
    from speechret.crypto.base import CipherError

    if pesq_mode not in LQO_MAPPING:
        raise ValueError(f"pesq_mode must be 'nb' or 'wb', got {pesq_mode!r}")
    rate = int(pesq_rate) if pesq_rate is not None else int(sample_rate)
    if rate not in (8000, 16000) or (pesq_mode == "wb" and rate != 16000):
        raise ValueError(f"PESQ rate {rate} Hz is not usable in {pesq_mode!r} mode "
                         "(nb: 8000/16000, wb: 16000); set pesq_rate")

    def at_pesq_rate(x: np.ndarray) -> np.ndarray:
        if rate == int(sample_rate):
            return x
        from speechret.audio import resample

        return resample(x.astype(np.float32), int(sample_rate), rate).astype(np.float64)

    pesq_enc: list[float] = []
    pesq_dec: list[float] = []
    corr_o: list[float] = []
    corr_e: list[float] = []
    exact = 0
    audio_s = enc_s = dec_s = 0.0
    waves = list(waves)
    if warmup and waves:
        probe = np.zeros(max(1, int(sample_rate) // 10), np.int16)
        cipher.decrypt("warmup", cipher.encrypt("warmup", probe))
    for i, w in enumerate(waves):
        item = f"eval-{i}"
        pcm = to_pcm16(w)
        if pcm.ndim != 1:
            raise ValueError(f"wave {i}: expected a 1-D signal, got shape {pcm.shape}")
        audio_s += pcm.size / float(sample_rate)
        t0 = time.perf_counter()
        blob = cipher.encrypt(item, pcm)
        t1 = time.perf_counter()
        try:
            dec = np.asarray(cipher.decrypt(item, blob))
        except CipherError as exc:
            log.warning("item %d: decryption failed (%s)", i, exc)
            dec = np.zeros(0, np.int16)
        t2 = time.perf_counter()
        enc_s += t1 - t0
        dec_s += t2 - t1
        ok = dec.dtype == np.int16 and dec.shape == pcm.shape and bool(np.array_equal(dec, pcm))
        exact += int(ok)
        enc_audio = ciphertext_as_audio(cipher, pcm, item, blob=blob)
        ref = at_pesq_rate(pcm.astype(np.float64) / 32768.0)
        pesq_enc.append(pesq_mos(ref, at_pesq_rate(enc_audio.astype(np.float64)), rate, pesq_mode, pesq_scale))
        if dec.shape == pcm.shape:
            pesq_dec.append(pesq_mos(ref, at_pesq_rate(dec.astype(np.float64) / 32768.0), rate, pesq_mode,
                                     pesq_scale))
        else:
            pesq_dec.append(float("nan"))
        corr_o.append(abs(adjacent_correlation(pcm)))
        corr_e.append(abs(adjacent_correlation(enc_audio)))
    n = len(waves)
    try:
        ks = float(key_space(cipher)["log2"])
    except ValueError:
        ks = float("nan")
    return {
        "pesq_encrypted": _nanmean(pesq_enc),
        "pesq_decrypted": _nanmean(pesq_dec),
        "pesq_encrypted_failed": float(sum(not math.isfinite(v) for v in pesq_enc)),
        "pesq_decrypted_failed": float(sum(not math.isfinite(v) for v in pesq_dec)),
        "decrypt_bit_exact": exact / n if n else float("nan"),
        "corr_original": _nanmean(corr_o),
        "corr_encrypted": _nanmean(corr_e),
        "key_space_log2": ks,
        "n_items": float(n),
        "encrypt_x_realtime": audio_s / enc_s if enc_s > 0 else float("nan"),
        "decrypt_x_realtime": audio_s / dec_s if dec_s > 0 else float("nan"),
    }
