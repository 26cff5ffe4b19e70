"""Query-by-example over an encrypted library (the work behind ``search.py``).

Queries are audio (paths or arrays); their codes come from the library's checkpoint through
:class:`~speechret.hasher.Hasher`, so queries and library share one code path.  Modes:

* ``topk``      — FAISS ``search`` over the full code (k nearest by Hamming distance);
* ``threshold`` — FAISS ``range_search``: every item with BER < ``threshold`` (paper A §4.5);
* ``two_stage`` — paper B §IV-F: category code first, then, inside the query's category, the
  ``k`` nearest by BER on the semantic code h2 (``stage2="topk"``, default) or every item with
  ``BER(h2) < threshold`` (``stage2="threshold"``: paper B's τ-thresholded retrieval, "if the BER
  ... is less than the set threshold τ, the match is successful");
* ``keyword``   — paper C §4.4: grouped 27-bit sliding matching, hits with their span;
* ``full_speech`` — paper C, one best alignment per item; ``direction`` ``"query_in_item"``
  (default, §4.4 as written) or ``"symmetric"`` (see :mod:`speechret.search.sliding`).  The hits
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
from speechret.hasher import Hasher
from speechret.library.store import SpeechLibrary
from speechret.search.sliding import DEFAULT_DIRECTION, check_direction

MODES = ("topk", "threshold", "two_stage", "keyword", "full_speech")
#: stage 2 of ``mode=two_stage`` (paper B §IV-F).
STAGE2 = ("topk", "threshold")


def _paper_c_hits(lib: SpeechLibrary, groups: Any, gamma: float, mode: str, direction: str) -> list[dict]:
    """One query's paper-C hits as :meth:`SpeechLibrary.search_keyword` returns them, with the
    full-speech ``direction`` (the library's matcher defaults to :data:`DEFAULT_DIRECTION`)."""
    if mode == "keyword" or direction == DEFAULT_DIRECTION:
        return lib.search_keyword(groups, gamma, mode=mode)
    hits = lib.matchers()["keyword"].search(np.asarray(groups), gamma, mode=mode, direction=direction)
    names = lib._ids_for_rows([h.item for h in hits])
    return [{"item_id": names[h.item], "row": h.item, "ber": h.ber, "rank": r + 1, "span": (h.start, h.end)}
            for r, h in enumerate(hits)]


def search_codes(lib: SpeechLibrary, codes: Any, mode: str = "topk", k: int = 10,
                 threshold: float = 0.25, gamma: float = 0.25, direction: str = DEFAULT_DIRECTION,
                 stage2: str = "topk") -> list[list[dict]]:
    """Per query, the ranked hits of ``mode`` for codes made by the library's hasher.

    ``k``: hits per query of ``topk``, of ``two_stage`` with ``stage2="topk"``, and the cap of the
    paper-C modes (0 = all); ``threshold``: the BER bound of ``threshold`` and of ``two_stage``
    with ``stage2="threshold"`` (``BER(h2) < τ`` inside the query's category, uncapped);
    ``gamma`` / ``direction``: paper C's threshold (``≤ γ``) and full-speech direction."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}; choose one of {MODES}")
    if stage2 not in STAGE2:
        raise ValueError(f"stage2 must be one of {STAGE2}, not {stage2!r}")
    check_direction(direction)
    method = lib.manifest["hash_method"]
    if mode in ("keyword", "full_speech"):
        if method != "paper_c":
            raise ValueError(f"mode {mode} needs a paper_c library (grouped 27-bit codes), this one holds {method}")
        out = [_paper_c_hits(lib, g, gamma, mode, direction) for g in codes]
        return [hits[:k] if k else hits for hits in out]
    if method == "paper_c":
        raise ValueError(f"a paper_c library is searched with mode=keyword or full_speech, not {mode}")
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


def _query_files(queries: Any) -> list[Path]:
    if isinstance(queries, (str, Path)):
        p = Path(queries)
        if p.is_dir():
            return sorted(q for q in p.rglob("*") if q.suffix.lower() in {".wav", ".flac", ".mp3"})
        return [p]
    return [Path(q) for q in queries]


def run_search(cfg: Any) -> list[dict]:
    """``search.py``: query a library with audio files; print a table or JSON; optionally decrypt."""
    import json

    from rich.console import Console
    from rich.table import Table

    from speechret.library.store import file_sha256

    lib = SpeechLibrary.open(cfg.library)
    ckpt = cfg.ckpt or lib.manifest.get("checkpoint")
    if not ckpt:
        raise ValueError(f"{cfg.library}: the manifest names no checkpoint; pass ckpt=...")
    want = lib.manifest.get("checkpoint_sha256")
    if want and file_sha256(ckpt) != want:
        raise ValueError(f"{ckpt} is not the checkpoint {cfg.library} was indexed with (sha256 differs)")
    hasher = Hasher.from_checkpoint(ckpt, device=cfg.device)
    files = _query_files(cfg.queries)
    rows = search_audio(lib, hasher, [str(f) for f in files], mode=cfg.mode, k=cfg.k,
                        threshold=cfg.threshold, gamma=cfg.gamma,
                        direction=cfg.get("direction", DEFAULT_DIRECTION), stage2=cfg.get("stage2", "topk"))
    if cfg.format == "json":
        print(json.dumps(rows, indent=2, default=list))
    else:
        how = f"{cfg.mode} ({cfg.get('stage2', 'topk')})" if cfg.mode == "two_stage" else cfg.mode
        table = Table(title=f"{how} search of {lib.manifest['hash_method']} library {cfg.library} ({len(lib)} items)")
        for col in ("query", "rank", "item_id", "BER", "span"):
            table.add_column(col)
        for r in rows:
            table.add_row(Path(r["query"]).name, str(r["rank"]), r["item_id"], f"{r['ber']:.4f}",
                          "" if r["span"] is None else f"{r['span'][0]}-{r['span'][1]}")
        Console(width=140).print(table)
    if cfg.decrypt:
        from speechret.library.indexer import build_cipher_from_cfg

        cipher = build_cipher_from_cfg(cfg.cipher)
        lib = SpeechLibrary.open(cfg.library, cipher)
        for path in decrypt_hits(lib, rows, cipher, cfg.decrypt):
            print(f"[speechret] decrypted {path}")
    return rows
