"""Audio I/O: load / save / resample / validate, with errors that name the file.

All audio enters the pipeline here (``audio file -> load/validate -> (CPO) -> features``, see
``../shared/docs/DESIGN.md``). The papers' corpora are 16 kHz, 16-bit mono speech (paper A §5.1,
paper B §V-A, paper C §5.1: THCHS-30 / AISHELL-3 / DSPSpeech-20), so the defaults are 16 kHz and
16-bit PCM WAV.

* I/O goes through :mod:`soundfile` (libsndfile), which reads and writes WAV, FLAC and MP3.
  ``torchaudio.load`` is deliberately not used.
* Every problem with a file is reported as a single exception type, :class:`AudioError` (a
  :class:`ValueError`), whose message starts with the file name and then states the problem:
  missing file, 0-byte file, unsupported extension/container, unreadable or corrupt data, truncated
  data, 0 samples, non-finite samples (NaN/inf, possible in float WAV), too short / too long.
* Multichannel audio is mixed down to mono by the **mean** over channels (not by taking the first
  channel, and not by summing, so a stereo file with identical channels loads exactly as its
  mono version).
* Bad input: :class:`AudioPolicy` + :func:`check_waveform`, one policy for index and search (too
  short / silent / non-finite -> error; clipped / over-length -> warning; beyond +-1 -> refused).
* Resampling uses a polyphase filter (:func:`scipy.signal.resample_poly`) with the rational
  ratio ``new/old`` reduced by :func:`math.gcd`; :func:`resample_torch` is the batched torch
  equivalent (``torchaudio.functional.resample``, windowed-sinc) for tensors ``(..., T)``.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from speechret.errors import ConfigError, SpeechretError
from speechret.fileio import atomic_path

__all__ = [
    "AudioError", "AudioInfo", "AudioPolicy", "CheckedWave", "check_waveform", "split_windows",
    "SUPPORTED_EXTENSIONS", "audio_info", "load_audio", "save_audio", "to_pcm16", "resample",
    "resample_torch", "validate_wave",
]

#: extension (lower case) -> soundfile container format.
SUPPORTED_EXTENSIONS: dict[str, str] = {".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".mp3": "MP3"}

# Containers libsndfile may report for a file we accept (content is detected by libsndfile, the
# extension is only a first filter).
_ACCEPTED_CONTAINERS = {"WAV", "WAVEX", "RF64", "W64", "FLAC", "MP3"}

# Default subtype per container when saving.
_DEFAULT_SUBTYPE = {"WAV": "PCM_16", "FLAC": "PCM_16", "MP3": "MPEG_LAYER_III"}

# Integer PCM subtypes: values are clipped to the representable range before writing.
_INT_SUBTYPES = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"}

# An MP3 stream decodes a few frames short / long of what its header announces when it has no
# exact length tag, so truncation of MP3 is only declared beyond this tolerance (samples).
_MP3_LENGTH_TOLERANCE = 2 * 1152

log = logging.getLogger(__name__)


class AudioError(SpeechretError, ValueError):
    """A problem with one audio file or waveform.

    ``str(err)`` is ``"<source>: <problem>"``; the parts are kept as ``err.source`` and
    ``err.problem`` for programmatic use.
    """

    def __init__(self, source: str | os.PathLike[str], problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across DataLoader workers
        return (type(self), (self.source, self.problem))


@dataclass(frozen=True)
class AudioInfo:
    """Header information of an audio file (from :func:`soundfile.info`, no decoding)."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Duration in seconds (``frames / sample_rate``)."""
        return self.frames / self.sample_rate if self.sample_rate > 0 else 0.0


# ---- helpers ---------------------------------------------------------------------------------


def _format_for_path(path: Path, *, for_writing: bool) -> str:
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        verb = "write" if for_writing else "read"
        raise AudioError(path, f"unsupported audio format/extension {ext or '(none)'!r}; "
                               f"can {verb} {supported}")
    return SUPPORTED_EXTENSIONS[ext]


def _check_file(path: Path) -> None:
    """Existence, regular file, non-empty, supported extension."""
    _format_for_path(path, for_writing=False)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _libsndfile_problem(exc: Exception) -> str:
    msg = str(exc)
    # libsndfile messages look like "Error opening '/x/y.wav': Format not recognised."
    if "':" in msg:
        msg = msg.split("':", 1)[1].strip()
    return msg or type(exc).__name__


def _wav_declared_data_bytes(path: Path) -> tuple[int, int] | None:
    """For a RIFF/WAVE file: ``(declared data-chunk bytes, bytes actually present)``.

    libsndfile silently shortens a WAV whose ``data`` chunk is cut (it reports the frames that
    are present), so truncation must be detected from the header. Returns ``None`` when the file
    is not a plain RIFF/WAVE or when the writer left the size unknown (0 or 0xFFFFFFFF,
    streaming writers do that).
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                if csize in (0, 0xFFFFFFFF):
                    return None
                return csize, size - (pos + 8)
            pos += 8 + csize + (csize & 1)  # chunks are word aligned
    return None


def _to_numpy(wave: Any) -> np.ndarray:
    if hasattr(wave, "detach"):  # torch.Tensor without importing torch here
        wave = wave.detach().cpu().numpy()
    return np.asarray(wave)


# ---- public API ------------------------------------------------------------------------------


def validate_wave(
    wave: Any,
    source: str | os.PathLike[str],
    sample_rate: int = 16000,
    min_duration: float = 0.0,
    max_duration: float | None = None,
) -> np.ndarray:
    """Check a mono waveform and return it as a float32 numpy array.

    Raises :class:`AudioError` naming ``source`` (a file name, an item id, ...) when the wave is
    not 1-D, is empty (0 samples), contains non-finite samples (NaN / inf, which float WAV files
    can hold), is shorter than ``min_duration`` seconds, or longer than ``max_duration`` seconds.
    Accepts numpy arrays, sequences and torch tensors (moved to CPU).
    """
    arr = _to_numpy(wave)
    if arr.ndim != 1:
        raise AudioError(source, f"expected a mono 1-D waveform, got shape {tuple(arr.shape)}")
    if arr.size == 0:
        raise AudioError(source, "empty audio (0 samples)")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise AudioError(source, f"waveform has non-real dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        n_nan = int(np.isnan(arr).sum())
        raise AudioError(
            source,
            f"{bad.size} non-finite sample(s) ({n_nan} NaN, {bad.size - n_nan} inf), "
            f"first at sample {int(bad[0])}",
        )
    duration = arr.size / float(sample_rate)
    if min_duration and duration < min_duration:
        raise AudioError(source, f"too short: {duration:.3f} s ({arr.size} samples at "
                                 f"{sample_rate} Hz) < minimum duration {min_duration:g} s")
    if max_duration is not None and duration > max_duration:
        raise AudioError(source, f"too long: {duration:.3f} s > maximum duration {max_duration:g} s")
    return arr


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Header information (sample rate, channels, frames, duration) without decoding.

    Raises :class:`AudioError` for a missing / empty / unsupported / unreadable file.
    """
    p = Path(path)
    _check_file(p)
    try:
        info = sf.info(str(p))
    except Exception as exc:  # libsndfile raises LibsndfileError / RuntimeError
        raise AudioError(p, f"unreadable or corrupt audio ({_libsndfile_problem(exc)})") from exc
    if info.format not in _ACCEPTED_CONTAINERS:
        raise AudioError(p, f"unsupported audio container {info.format!r} ({info.format_info})")
    return AudioInfo(
        path=str(p),
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        format=str(info.format),
        subtype=str(info.subtype),
    )


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = 16000,
    *,
    min_duration: float = 0.0,
    max_duration: float | None = None,
) -> np.ndarray:
    """Load a WAV / FLAC / MP3 file as a float32 mono waveform at ``sample_rate``.

    * Integer PCM is scaled to [-1, 1) (``int16 / 32768``, exact); float files are returned as
      stored (values beyond +-1 are kept, not clipped or renormalised).
    * Multichannel audio is mixed down by the mean over channels.
    * The wave is resampled (polyphase, :func:`resample`) when the file's rate differs from
      ``sample_rate``; ``sample_rate=None`` keeps the file's rate.
    * Validation (:func:`validate_wave`) runs on the decoded audio *before* resampling, with the
      file's own rate, so durations refer to the file.

    Raises :class:`AudioError` (message ``"<path>: <problem>"``) when the file is missing, 0 bytes,
    of an unsupported extension or container, unreadable / corrupt, truncated (a WAV whose data
    chunk is shorter than its header declares, an MP3 / FLAC stream that ends early), holds 0
    samples or non-finite samples, or is shorter than ``min_duration`` / longer than
    ``max_duration`` seconds.
    """
    p = Path(path)
    info = audio_info(p)
    if info.format in {"WAV", "WAVEX"}:
        declared = _wav_declared_data_bytes(p)
        if declared is not None and declared[1] < declared[0]:
            raise AudioError(p, f"truncated file: data chunk declares {declared[0]} bytes but "
                                f"only {declared[1]} are present")
    if info.channels < 1:
        raise AudioError(p, "no audio channels")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(p, f"unreadable, corrupt or truncated audio data "
                            f"({_libsndfile_problem(exc)})") from exc
    n = data.shape[0]
    if info.frames > 0:
        tolerance = _MP3_LENGTH_TOLERANCE if info.format == "MP3" else 0
        if n + tolerance < info.frames:
            raise AudioError(p, f"truncated file: header announces {info.frames} frames but only "
                                f"{n} could be decoded")
    if n == 0:
        raise AudioError(p, "empty audio (0 samples)")
    wave = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float64).astype(np.float32)
    wave = validate_wave(wave, str(p), int(sr), min_duration, max_duration)
    if sample_rate is not None and int(sr) != int(sample_rate):
        wave = resample(wave, int(sr), int(sample_rate))
    return np.ascontiguousarray(wave, dtype=np.float32)


def save_audio(
    path: str | os.PathLike[str],
    wave: Any,
    sample_rate: int = 16000,
    subtype: str | None = None,
) -> Path:
    """Write a mono (``(T,)``) or multichannel (``(T, C)``) wave; container by extension.

    ``.wav`` (default subtype ``PCM_16``), ``.flac`` (``PCM_16``), ``.mp3`` (MPEG Layer III at
    libsndfile's default quality). For integer subtypes the samples are clipped to the
    representable range first (libsndfile would otherwise wrap around). The file is written to a
    temporary name in the same directory and renamed into place, so a crash never leaves a
    half-written file. Non-finite samples raise :class:`AudioError`. Returns the path.
    """
    p = Path(path)
    fmt = _format_for_path(p, for_writing=True)
    arr = _to_numpy(wave)
    if arr.ndim == 1:
        validate_wave(arr, str(p), sample_rate)
    elif arr.ndim == 2:
        if arr.size == 0:
            raise AudioError(p, "empty audio (0 samples)")
        for c in range(arr.shape[1]):
            validate_wave(arr[:, c], str(p), sample_rate)
    else:
        raise AudioError(p, f"expected a (T,) or (T, channels) waveform, got shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    subtype = (subtype or _DEFAULT_SUBTYPE[fmt]).upper()
    if not sf.check_format(fmt, subtype):
        raise AudioError(p, f"unsupported subtype {subtype!r} for {fmt}")
    if subtype in _INT_SUBTYPES:
        arr = np.clip(arr, -1.0, 1.0)
    try:
        with atomic_path(p, suffix=p.suffix + ".part") as tmp:
            sf.write(tmp, arr, int(sample_rate), subtype=subtype, format=fmt)
    except Exception as exc:
        if isinstance(exc, AudioError):
            raise
        raise AudioError(p, f"cannot write audio ({_libsndfile_problem(exc)})") from exc
    return p


def to_pcm16(wave: Any) -> np.ndarray:
    """float [-1, 1) → int16 PCM (×32768, rounded, clipped): the form every library blob stores and
    every cipher takes; int16 input is returned as is.

    soundfile reads 16-bit files as ``int / 32768``, so a 16-bit source is stored bit-exactly."""
    arr = np.asarray(wave)
    if arr.dtype == np.int16:
        return arr
    return np.clip(np.round(np.asarray(arr, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def resample(wave: Any, orig_sr: int, new_sr: int) -> np.ndarray:
    """Polyphase resampling of a numpy wave along its last axis.

    Uses :func:`scipy.signal.resample_poly` with ``up/down = new_sr/orig_sr`` reduced by their
    gcd (e.g. 44100 -> 16000 is up=160, down=441). Output length is ``ceil(T * new_sr / orig_sr)``;
    float32. Returns the input (as float32) when the rates are equal.
    """
    from scipy.signal import resample_poly

    orig_sr, new_sr = int(orig_sr), int(new_sr)
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    arr = np.asarray(_to_numpy(wave), dtype=np.float32)
    if orig_sr == new_sr:
        return arr
    g = math.gcd(orig_sr, new_sr)
    out = resample_poly(arr, new_sr // g, orig_sr // g, axis=-1)
    return np.ascontiguousarray(out, dtype=np.float32)


def resample_torch(wave: Any, orig_sr: int, new_sr: int) -> Any:
    """Batched resampling of a tensor ``(..., T)`` with ``torchaudio.functional.resample``.

    Windowed-sinc (Hann) interpolation evaluated as a strided convolution on the tensor's device;
    torchaudio reduces the ratio by the gcd internally. Output length is
    ``ceil(T * new_sr / orig_sr)``. Returns the input unchanged when the rates are equal.
    """
    import torch

    from speechret.torchaudio_api import resample

    orig_sr, new_sr = int(orig_sr), int(new_sr)
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    x = wave if isinstance(wave, torch.Tensor) else torch.as_tensor(np.asarray(wave))
    if not x.is_floating_point():
        x = x.float()
    if orig_sr == new_sr:
        return x
    return resample(x, orig_sr, new_sr)


# ---- bad-input policy: one for index.py and search.py ----------------------------------------


@dataclass(frozen=True)
class AudioPolicy:
    """What index and search do with suspicious audio (``audio_policy:`` in ``conf/{index,search}.yaml``).

    Errors -- the file is reported and skipped: its code would say nothing about speech, yet sit in
    the library as a valid item or rank as a valid query:

    * shorter than ``min_seconds`` (0.2 s: less than a syllable);
    * digital silence: peak ``|x| <= silence_peak`` (1e-4, about -80 dBFS: zeros or LSB dither);
    * non-finite samples (NaN / inf, possible in float files);
    * float samples beyond +-1 with ``over_range="refuse"`` (default: the file's scale is unknown);
      ``"normalize"`` divides by the peak. Never silently clipped (that would store noise). A peak
      within ``overshoot`` (5 %) of 1 -- resampling ringing of full-scale PCM -- is always normalised.

    Warnings naming the file -- the audio is still coded:

    * clipping: more than ``clip_fraction`` (1 %) of the samples at ``|x| >= clip_level`` (0.999);
    * over length: longer than the model's fixed window (4 s for paper A's Log-Mel; variable-length
      models have none). ``over_length``: ``"first"`` codes the window the model sees (its features
      crop; the first window by default); ``"windows"`` codes overlapping windows (hop
      ``window_hop`` x window, the last flush with the end) each on its own -- search ranks an item
      by its best window, index refuses it (one item, one code); ``"refuse"`` makes it an error.
    """

    min_seconds: float = 0.2
    silence_peak: float = 1e-4
    clip_level: float = 0.999
    clip_fraction: float = 0.01
    over_range: str = "refuse"
    overshoot: float = 0.05
    over_length: str = "first"
    window_hop: float = 0.5

    def __post_init__(self) -> None:
        for name, lo, hi in (("min_seconds", 0, math.inf), ("silence_peak", 0, 1), ("clip_level", 1e-9, 1),
                             ("clip_fraction", 0, 1), ("window_hop", 1e-9, 1), ("overshoot", 0, 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ConfigError(f"audio_policy.{name}: must be a number in [{lo:g}, {hi:g}], got {v!r}")
        if self.over_range not in ("refuse", "normalize"):
            raise ConfigError(f"audio_policy.over_range: must be refuse or normalize, not {self.over_range!r}")
        if self.over_length not in ("first", "windows", "refuse"):
            raise ConfigError(f"audio_policy.over_length: must be first, windows or refuse, not {self.over_length!r}")

    @classmethod
    def from_cfg(cls, node: Any = None, *, windows: bool = True) -> AudioPolicy:
        """The policy of a config mapping (``None`` -> defaults); unknown keys and bad values raise
        :class:`ConfigError` naming ``audio_policy.<key>``. ``windows=False`` (index) refuses
        ``over_length: windows``."""
        values = dict(node or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"audio_policy: unknown key(s) {unknown}; known: {[f.name for f in fields(cls)]}")
        policy = cls(**values)
        if not windows and policy.over_length == "windows":
            raise ConfigError("audio_policy.over_length: windows is supported by search only (an indexed item has "
                              "one code); use first or refuse for index")
        return policy


@dataclass
class CheckedWave:
    """A wave that passed :func:`check_waveform`: ``wave`` (normalised if need be), the ``warnings``
    about it, ``windows`` (``(start, end)`` sample spans) when it is coded window by window."""

    wave: np.ndarray
    warnings: list[str] = field(default_factory=list)
    windows: list[tuple[int, int]] | None = None


def split_windows(n: int, window: int, hop: int) -> list[tuple[int, int]]:
    """``(start, end)`` spans of ``window`` samples every ``hop`` covering ``n``; the last ends at ``n``."""
    if n <= window:
        return [(0, n)]
    starts = list(range(0, n - window + 1, max(1, hop)))
    if starts[-1] + window < n:
        starts.append(n - window)
    return [(s, s + window) for s in starts]


def check_waveform(wave: Any, sample_rate: int, source: str | os.PathLike[str], policy: AudioPolicy | None = None,
                   window: int | None = None) -> CheckedWave:
    """Apply ``policy`` (default :class:`AudioPolicy`) to a mono wave at ``sample_rate``.

    ``window``: the model's fixed input length in samples (``None``: variable-length model). Raises
    :class:`AudioError` naming ``source``; logs and returns the warnings, each naming ``source``."""
    p = policy or AudioPolicy()
    arr = validate_wave(wave, source, sample_rate)  # 1-D, non-empty, real, finite
    dur = arr.size / float(sample_rate)
    if dur < p.min_seconds:
        raise AudioError(source, f"too short: {dur:.3f} s ({arr.size} samples at {sample_rate} Hz) < "
                                 f"audio_policy.min_seconds={p.min_seconds:g} s")
    peak = float(np.abs(arr).max())
    out = CheckedWave(arr)
    if peak <= p.silence_peak:
        raise AudioError(source, f"digital silence: peak |x| = {peak:.3g} <= audio_policy.silence_peak="
                                 f"{p.silence_peak:g} (nothing to code)")
    if peak > 1.0 + p.overshoot and p.over_range == "refuse":
        raise AudioError(source, f"float samples beyond +-1 (peak {peak:.4g}); refused rather than clipped "
                                 f"(audio_policy.over_range=normalize divides by the peak)")
    clipped = float(np.mean(np.abs(arr) >= p.clip_level)) if peak <= 1.0 + p.overshoot else 0.0
    if clipped > p.clip_fraction:
        out.warnings.append(f"{source}: clipping: {100 * clipped:.1f} % of the samples at full scale "
                            f"(|x| >= {p.clip_level:g}); codes may be unreliable")
    if peak > 1.0:
        out.wave = (arr / np.float32(peak)).astype(np.float32)
        out.warnings.append(f"{source}: samples beyond +-1 (peak {peak:.4g}), normalised by the peak")
    if window and arr.size > window:
        what = f"{dur:.1f} s is longer than the model's {window / sample_rate:g} s window"  # over length
        if p.over_length == "refuse":
            raise AudioError(source, f"too long: {what} (audio_policy.over_length=refuse)")
        if p.over_length == "windows":
            out.windows = split_windows(arr.size, window, int(round(p.window_hop * window)))
            out.warnings.append(f"{source}: {what}: coded as {len(out.windows)} overlapping windows")
        else:
            out.warnings.append(f"{source}: {what}: only the model's window is coded "
                                f"(audio_policy.over_length=first)")
    for w in out.warnings:
        log.warning("%s", w)
    return out
