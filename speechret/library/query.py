"""Query-by-example over an encrypted library (the work behind ``search.py``).

Queries are audio (paths or arrays); their codes come from the library's checkpoint through
:class:`~speechret.hashing.hasher.Hasher`, so queries and library share one code path.  Modes:

* ``topk``      — FAISS ``search`` over the full code (k nearest by Hamming distance);
* ``threshold`` — FAISS ``range_search``: every item with BER < ``threshold`` (paper A §4.5);
* ``two_stage`` — paper B §IV-F: category code first, then, inside the query's category, the
  ``k`` nearest by BER on the semantic code h2 (``stage2="topk"``, default) or every item with
  ``BER(h2) < threshold`` (``stage2="threshold"``: paper B's τ-thresholded retrieval, "if the BER
  ... is less than the set threshold τ, the match is successful");
* ``keyword``   — paper C §4.4: grouped 27-bit sliding matching, hits with their span;
* ``full_speech`` — paper C, one best alignment per item; ``direction`` ``"query_in_item"``
  (default, §4.4 as written) or ``"symmetric"`` (see :mod:`speechret.hashing.sliding`).  The hits
  at γ are exactly the items the evaluation retrieves at γ
  (:meth:`speechret.evaluate.systems.HashSystem.retrieved`, same direction).

Hits are dicts ``{query, rank, item_id, ber, span}``; ``decrypt_hits`` writes the hits' decrypted
audio (the only step that needs the key).

Bad input: :func:`check_search_args` validates ``mode`` / ``k`` / ``threshold`` / ``gamma`` /
``stage2`` / ``direction`` with a :class:`~speechret.errors.ConfigError` naming the parameter, and
:func:`search_audio` applies the index's bad-input policy (:class:`~speechret.audio.AudioPolicy`)
to every query: a bad query is reported (``failed``) while the good ones are still answered.  With
``over_length="windows"`` a query longer than the model's window is coded window by window and each
item is ranked by its best window.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speechret.audio import AudioError, AudioPolicy, check_waveform, load_audio, save_audio
from speechret.errors import ConfigError
from speechret.hashing.sliding import DEFAULT_DIRECTION, check_direction
from speechret.library.store import SpeechLibrary

if TYPE_CHECKING:  # the keyless service searches by codes and never loads a model (nor torch)
    from speechret.hashing.hasher import Hasher

MODES = ("topk", "threshold", "two_stage", "keyword", "full_speech")
#: stage 2 of ``mode=two_stage`` (paper B §IV-F).
STAGE2 = ("topk", "threshold")
#: modes whose ``k`` is a cap that may be 0 (= every hit)
GROUPED = ("keyword", "full_speech")


def _number(name: str, v: Any, lo: float, hi: float, lo_open: bool, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) \
            or not (lo < v if lo_open else lo <= v) or v > hi:
        raise ConfigError(f"{name}: must be a number in {'(' if lo_open else '['}{lo:g}, {hi:g}] ({what}), got {v!r}")
    return float(v)


def check_search_args(mode: str = "topk", k: Any = 10, threshold: Any = 0.25, gamma: Any = 0.25,
                      stage2: str = "topk", direction: str = DEFAULT_DIRECTION,
                      lib: SpeechLibrary | None = None) -> int:
    """Validate the search parameters; returns ``k`` as an int. Each problem is a
    :class:`~speechret.errors.ConfigError` naming the parameter: ``mode`` not a mode (or, given
    ``lib``, not one of its hash method's modes); ``k`` not a positive integer (0 = all hits is
    allowed for the grouped modes ``keyword`` / ``full_speech`` only -- elsewhere it would silently
    return nothing); ``threshold`` outside [0, 1] (a BER bound, ``BER < threshold``); ``gamma``
    outside [0, 1]; an unknown ``stage2`` or ``direction``."""
    if mode not in MODES:
        raise ConfigError(f"mode: unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
    if lib is not None and mode not in lib.hashing.search_modes:
        raise ConfigError(f"mode: {mode} is not a search mode of a {lib.method} library "
                          f"(its modes: {', '.join(lib.hashing.search_modes)})")
    grouped = mode in GROUPED
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < (0 if grouped else 1):
        raise ConfigError(f"k: must be a {'non-negative' if grouped else 'positive'} integer (hits per query"
                          f"{'; 0 = all hits' if grouped else ''}), got {k!r}")
    _number("threshold", threshold, 0.0, 1.0, False, "a BER bound: hits have BER < threshold")
    _number("gamma", gamma, 0.0, 1.0, False, "a group BER bound: hits have distance <= gamma")
    if stage2 not in STAGE2:
        raise ConfigError(f"stage2: must be one of {', '.join(STAGE2)}, not {stage2!r}")
    try:
        check_direction(direction)
    except ValueError as exc:
        raise ConfigError(f"direction: {exc}") from None
    return int(k)


def search_codes(lib: SpeechLibrary, codes: Any, mode: str = "topk", k: int = 10,
                 threshold: float = 0.25, gamma: float = 0.25, direction: str = DEFAULT_DIRECTION,
                 stage2: str = "topk", prekeyed: bool = False) -> list[list[dict]]:
    """Per query, the ranked hits of ``mode`` for codes made by the library's hasher.

    ``mode`` must be one of the library's hash method's search modes
    (:attr:`speechret.hashing.HashMethod.search_modes`). ``k``: hits per query of ``topk``, of
    ``two_stage`` with ``stage2="topk"``, and the cap of the grouped modes (0 = all);
    ``threshold``: the BER bound of ``threshold`` and of ``two_stage`` with
    ``stage2="threshold"`` (``BER(h2) < τ`` inside the query's category, uncapped);
    ``gamma`` / ``direction``: paper C's threshold (``≤ γ``) and full-speech direction;
    ``prekeyed``: the codes are keyed already (a keyless server answering a key holder's query on a
    library with keyed codes, :mod:`speechret.hashing.keyed`)."""
    k = check_search_args(mode, k, threshold, gamma, stage2, direction, lib)
    if mode in ("keyword", "full_speech"):
        out = [lib.search_keyword(g, gamma, mode=mode, direction=direction, prekeyed=prekeyed) for g in codes]
        return [hits[:k] if k else hits for hits in out]
    if mode == "topk":
        return lib.search_topk(codes, k, prekeyed=prekeyed)
    if mode == "threshold":
        return lib.search_threshold(codes, threshold, prekeyed=prekeyed)
    if stage2 == "threshold":
        return lib.search_two_stage(codes, ber=threshold, prekeyed=prekeyed)
    return lib.search_two_stage(codes, k=k, prekeyed=prekeyed)


def search_audio(lib: SpeechLibrary, hasher: Hasher, queries: Sequence[Any], names: Sequence[str] | None = None,
                 *, policy: AudioPolicy | None = None, failed: list[tuple[str, str]] | None = None,
                 **kwargs: Any) -> list[dict]:
    """Codes for the query audio, then :func:`search_codes`; flat list of hits with the query name.

    Every query goes through :func:`~speechret.audio.check_waveform` with ``policy`` (default
    :class:`~speechret.audio.AudioPolicy`) and the model's window. A bad query raises
    :class:`~speechret.audio.AudioError` naming it, or -- when ``failed`` is a list -- is appended
    to it as ``(name, message)`` and skipped, so the good queries are still answered. With
    ``over_length="windows"`` a long query's windows are searched one by one and each item keeps
    its best (lowest BER) window; the merged hits are ranked again and capped at ``k``."""
    names = list(names) if names is not None else [str(q) if isinstance(q, (str, Path)) else f"query{i}"
                                                    for i, q in enumerate(queries)]
    k = check_search_args(**{a: kwargs[a] for a in ("mode", "k", "threshold", "gamma", "stage2", "direction")
                             if a in kwargs}, lib=lib)
    window = getattr(hasher.features, "fixed_samples", None)
    segments: list[np.ndarray] = []
    owners: list[tuple[str, int]] = []  # (query name, number of windows)
    for name, q in zip(names, queries):
        try:
            wave = load_audio(q, hasher.sample_rate) if isinstance(q, (str, Path)) else q
            checked = check_waveform(wave, hasher.sample_rate, name, policy, window)
        except AudioError as exc:
            if failed is None:
                raise
            failed.append((name, str(exc)))
            continue
        spans = checked.windows or [(0, len(checked.wave))]
        segments += [checked.wave[a:b] for a, b in spans]
        owners.append((name, len(spans)))
    if not segments:
        return []
    per_segment = search_codes(lib, hasher.codes_of_waves(segments), **kwargs)
    mode, stage2 = kwargs.get("mode", "topk"), kwargs.get("stage2", "topk")
    capped = mode == "topk" or (mode == "two_stage" and stage2 == "topk") or (mode in GROUPED and k > 0)
    rows, pos = [], 0
    for name, n in owners:
        hits = per_segment[pos]
        if n > 1:  # best window per item, ranked again
            best: dict[str, dict] = {}
            for seg_hits in per_segment[pos : pos + n]:
                for h in seg_hits:
                    if h["item_id"] not in best or h["ber"] < best[h["item_id"]]["ber"]:
                        best[h["item_id"]] = h
            hits = sorted(best.values(), key=lambda h: h["ber"])
            hits = hits[:k] if capped else hits
        pos += n
        for rank, h in enumerate(hits, 1):
            rows.append({"query": name, "rank": rank, "item_id": h["item_id"], "ber": float(h["ber"]),
                         "span": h.get("span")})
    return rows


def decrypt_hits(lib: SpeechLibrary, hits: Sequence[dict], cipher: Any, out_dir: str | Path) -> list[Path]:
    """Decrypt each distinct hit into ``out_dir/<item_id>.wav`` (16-bit PCM at the library rate)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sr = int(lib.manifest.get("sample_rate") or 16000)
    written = []
    for item_id in dict.fromkeys(h["item_id"] for h in hits):
        pcm = lib.decrypt(item_id, cipher)
        path = out_dir / f"{item_id}.wav"
        save_audio(path, pcm.astype(np.float32) / 32768.0, sr)
        written.append(path)
    return written
