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
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechret.audio import save_audio
from speechret.hashing.hasher import Hasher
from speechret.hashing.sliding import DEFAULT_DIRECTION, check_direction
from speechret.library.store import SpeechLibrary

MODES = ("topk", "threshold", "two_stage", "keyword", "full_speech")
#: stage 2 of ``mode=two_stage`` (paper B §IV-F).
STAGE2 = ("topk", "threshold")


def search_codes(lib: SpeechLibrary, codes: Any, mode: str = "topk", k: int = 10,
                 threshold: float = 0.25, gamma: float = 0.25, direction: str = DEFAULT_DIRECTION,
                 stage2: str = "topk") -> list[list[dict]]:
    """Per query, the ranked hits of ``mode`` for codes made by the library's hasher.

    ``mode`` must be one of the library's hash method's search modes
    (:attr:`speechret.hashing.HashMethod.search_modes`). ``k``: hits per query of ``topk``, of
    ``two_stage`` with ``stage2="topk"``, and the cap of the grouped modes (0 = all);
    ``threshold``: the BER bound of ``threshold`` and of ``two_stage`` with
    ``stage2="threshold"`` (``BER(h2) < τ`` inside the query's category, uncapped);
    ``gamma`` / ``direction``: paper C's threshold (``≤ γ``) and full-speech direction."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}; choose one of {MODES}")
    if stage2 not in STAGE2:
        raise ValueError(f"stage2 must be one of {STAGE2}, not {stage2!r}")
    check_direction(direction)
    if mode not in lib.hashing.search_modes:
        raise ValueError(f"mode {mode} is not a search mode of a {lib.method} library "
                         f"(its modes: {', '.join(lib.hashing.search_modes)})")
    if mode in ("keyword", "full_speech"):
        out = [lib.search_keyword(g, gamma, mode=mode, direction=direction) for g in codes]
        return [hits[:k] if k else hits for hits in out]
    if mode == "topk":
        return lib.search_topk(codes, k)
    if mode == "threshold":
        return lib.search_threshold(codes, threshold)
    if stage2 == "threshold":
        return lib.search_two_stage(codes, ber=threshold)
    return lib.search_two_stage(codes, k=k)


def search_audio(lib: SpeechLibrary, hasher: Hasher, queries: Sequence[Any], names: Sequence[str] | None = None,
                 **kwargs: Any) -> list[dict]:
    """Codes for the query audio, then :func:`search_codes`; flat list of hits with the query name."""
    names = list(names) if names is not None else [str(q) if isinstance(q, (str, Path)) else f"query{i}"
                                                    for i, q in enumerate(queries)]
    codes = hasher(list(queries))
    rows = []
    for name, hits in zip(names, search_codes(lib, codes, **kwargs)):
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
