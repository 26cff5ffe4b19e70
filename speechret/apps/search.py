"""The pipeline behind ``search.py``: open a library, hash the query audio with the library's
checkpoint, search (:func:`speechret.library.query.search_audio`), print a table or JSON, and
optionally decrypt the hits (the only step that needs the key)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from speechret.apps.index import build_cipher_from_cfg
from speechret.hashing.hasher import Hasher
from speechret.hashing.sliding import DEFAULT_DIRECTION
from speechret.library.query import decrypt_hits, search_audio
from speechret.library.store import SpeechLibrary, file_sha256


def _query_files(queries: Any) -> list[Path]:
    if isinstance(queries, (str, Path)):
        p = Path(queries)
        if p.is_dir():
            return sorted(q for q in p.rglob("*") if q.suffix.lower() in {".wav", ".flac", ".mp3"})
        return [p]
    return [Path(q) for q in queries]


def run_search(cfg: Any) -> list[dict]:
    """``search.py``: query a library with audio files; print a table or JSON; optionally decrypt."""
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
        table = Table(title=f"{how} search of {lib.method} library {cfg.library} ({len(lib)} items)")
        for col in ("query", "rank", "item_id", "BER", "span"):
            table.add_column(col)
        for r in rows:
            table.add_row(Path(r["query"]).name, str(r["rank"]), r["item_id"], f"{r['ber']:.4f}",
                          "" if r["span"] is None else f"{r['span'][0]}-{r['span'][1]}")
        Console(width=140).print(table)
    if cfg.decrypt:
        cipher = build_cipher_from_cfg(cfg.cipher)
        lib = SpeechLibrary.open(cfg.library, cipher)
        for path in decrypt_hits(lib, rows, cipher, cfg.decrypt):
            print(f"[speechret] decrypted {path}")
    return rows
