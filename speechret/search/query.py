"""Query-by-example over an encrypted library (the work behind ``search.py``).

Queries are audio (paths or arrays); their codes come from the library's checkpoint through
:class:`~speechret.hasher.Hasher`, so queries and library share one code path.  Modes:

* ``topk``      — FAISS ``search`` over the full code (k nearest by Hamming distance);
* ``threshold`` — FAISS ``range_search``: every item with BER < ``threshold`` (paper A §4.5);
* ``two_stage`` — paper B §IV-F: category code first, then BER on the semantic code;
* ``keyword``   — paper C §4.4: grouped 27-bit sliding matching, hits with their span;
* ``full_speech`` — paper C, one best alignment per item.

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

MODES = ("topk", "threshold", "two_stage", "keyword", "full_speech")


def search_codes(lib: SpeechLibrary, codes: Any, mode: str = "topk", k: int = 10,
                 threshold: float = 0.25, gamma: float = 0.25) -> list[list[dict]]:
    """Per query, the ranked hits of ``mode`` for codes made by the library's hasher."""
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}; choose one of {MODES}")
    method = lib.manifest["hash_method"]
    if mode in ("keyword", "full_speech"):
        if method != "paper_c":
            raise ValueError(f"mode {mode} needs a paper_c library (grouped 27-bit codes), this one holds {method}")
        out = [lib.search_keyword(g, gamma, mode=mode) for g in codes]
        return [hits[:k] if k else hits for hits in out]
    if method == "paper_c":
        raise ValueError(f"a paper_c library is searched with mode=keyword or full_speech, not {mode}")
    if mode == "topk":
        return lib.search_topk(codes, k)
    if mode == "threshold":
        return lib.search_threshold(codes, threshold)
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
                        threshold=cfg.threshold, gamma=cfg.gamma)
    if cfg.format == "json":
        print(json.dumps(rows, indent=2, default=list))
    else:
        table = Table(title=f"{cfg.mode} search of {lib.manifest['hash_method']} library {cfg.library} ({len(lib)} items)")
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
