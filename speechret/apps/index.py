"""The pipeline behind ``index.py``: build the cipher, add a corpus to an encrypted library
(:func:`speechret.library.indexer.index_items`), or rebuild / fsck it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate

from speechret.crypto.aead import generate_key_file
from speechret.data.corpora import load_corpus
from speechret.hashing.hasher import Hasher
from speechret.library.indexer import IndexReport, index_items, open_or_create
from speechret.library.store import SpeechLibrary

log = logging.getLogger(__name__)


def build_cipher_from_cfg(cfg_cipher: Any, create_key: bool = False) -> Any:
    """Instantiate ``conf/cipher``; with ``create_key`` a missing AES key file is generated first."""
    km = cfg_cipher.get("key_material") or {}
    key_file = km.get("key_file") if hasattr(km, "get") else None
    if create_key and cfg_cipher.get("name") == "aes_gcm" and key_file and not Path(key_file).expanduser().exists():
        generate_key_file(key_file)
        log.info("created key file %s (mode 0600): keep it, the library cannot be decrypted without it", key_file)
    return instantiate(cfg_cipher)


def run_index(cfg: Any) -> IndexReport | dict:
    """``index.py``: add the configured corpus to the library, or rebuild / fsck it."""
    cipher = build_cipher_from_cfg(cfg.cipher, cfg.get("create_key", False))
    if cfg.command in ("rebuild", "fsck"):
        lib = SpeechLibrary.open(cfg.library, cipher)
        if cfg.command == "rebuild":
            n = lib.rebuild()
            print(f"[speechret] rebuilt the FAISS index of {cfg.library} from SQLite: {n} rows")
            return {"rows": n}
        res = lib.fsck()
        print(f"[speechret] fsck {cfg.library}: {res}")
        return res
    if cfg.command != "add":
        raise ValueError(f"command must be add, rebuild or fsck, not {cfg.command!r}")
    hasher = Hasher.from_checkpoint(cfg.ckpt, device=cfg.device)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    kwargs = {} if dm.corpus == "synthetic" else dm.corpus_kwargs
    items = list(load_corpus(dm.corpus, dm.root, **kwargs).filter(**dm.select))
    index_cfg = {"kind": cfg.index.kind, "params": dict(cfg.index.get("params") or {})}
    lib = open_or_create(cfg.library, hasher, cipher, cfg.ckpt, index_cfg)
    report = index_items(lib, hasher, items, cipher, batch_size=cfg.batch_size, progress=cfg.progress)
    print(f"[speechret] library {cfg.library}: {len(lib)} items ({report.added} added, "
          f"{report.skipped_existing} already there, {len(report.failed)} failed) in {report.wall_seconds:.1f} s, "
          f"{report.seconds_of_audio_per_second:.1f} s of audio per second")
    for path, why in report.failed:
        print(f"  skipped {why}")
    return report
