"""The pipeline behind ``index.py``: build the cipher, add a corpus to an encrypted library
(:func:`speechret.library.indexer.index_items`), or check / repair / rebuild / remove items of it
(:mod:`speechret.library.fsck`; none of those needs the key, except ``fsck deep=true`` and removing
by corpus id)."""

from __future__ import annotations

import logging
from typing import Any

import hydra
from hydra.utils import instantiate

from speechret.audio import AudioPolicy
from speechret.config import CONF_DIR, refuse_renamed_keys
from speechret.crypto.keys import build_cipher_from_cfg  # key hygiene: speechret/crypto/keys.py
from speechret.data.corpora import load_corpus
from speechret.errors import ConfigError, SpeechretError
from speechret.hashing.hasher import Hasher
from speechret.library.indexer import IndexReport, index_items, open_or_create
from speechret.library.fsck import repair
from speechret.library.store import OPAQUE_ID, LibraryError, SpeechLibrary

log = logging.getLogger(__name__)


def _cipher(cfg: Any) -> Any:
    return build_cipher_from_cfg(cfg.cipher, cfg.get("create_key", False), library=cfg.library)


def _print_fsck(library: Any, res: dict) -> None:
    state = "ok" if res["ok"] else "NOT OK"
    print(f"[speechret] fsck {library}: {state} ({res.get('items', '?')} items{', deep' if res.get('deep') else ''})")
    for key in ("manifest", "index", "missing", "corrupt", "misnamed", "orphans", "tmp", "unauthentic"):
        for entry in res.get(key) or []:
            print(f"  {key}: {entry}")
    if res.get("unrecoverable"):
        ids = ",".join(res["unrecoverable"])
        print(f"  unrecoverable items: remove them with index.py command=remove library={library} ids=[{ids}] "
              f"and add them again")
    if res.get("orphans") or res.get("tmp") or res.get("index") or res.get("manifest"):
        print(f"  run index.py command=repair library={library} to fix the manifest, orphans and index")


def run_fsck(cfg: Any) -> dict:
    """``command=fsck``: check without the key (``deep=true`` authenticates every item, with the key);
    a library that cannot even be opened is reported, not raised. Exits non-zero when not ok."""
    deep = bool(cfg.get("deep", False))
    try:
        with SpeechLibrary.open(cfg.library, _cipher(cfg) if deep else None) as lib:
            res = lib.fsck(deep=deep)
    except LibraryError as exc:
        res = {"ok": False, "library": str(cfg.library), "manifest": [str(exc)], "unrecoverable": []}
    _print_fsck(cfg.library, res)
    if not res["ok"] and cfg.get("exit_on_error", True):
        raise SystemExit(f"[speechret] fsck {cfg.library}: not ok")
    return res


def run_maintenance(cfg: Any) -> dict:
    """``command=rebuild | repair | remove`` (no key needed; ``remove`` with corpus ids needs it)."""
    if cfg.command == "repair":
        res = repair(cfg.library)
        for action in res["actions"]:
            print(f"[speechret] repair {cfg.library}: {action}")
        _print_fsck(cfg.library, res["fsck"])
        return res
    ids = [str(i) for i in (cfg.get("ids") or [])]
    if cfg.command == "remove" and not ids:
        raise ConfigError("ids: command=remove needs ids=[<item id>,...] (the ids fsck lists)")
    with SpeechLibrary.open(cfg.library) as lib:
        if cfg.command == "rebuild":
            n = lib.rebuild()
            print(f"[speechret] rebuilt the FAISS index of {cfg.library} from SQLite: {n} rows")
            return {"rows": n}
        if not all(OPAQUE_ID.match(i) and lib.has(i) for i in ids):  # corpus ids: map them with the key
            lib.close()
            lib = SpeechLibrary.open(cfg.library, _cipher(cfg))
        removed = lib.remove(ids)
        print(f"[speechret] removed {len(removed)} items from {cfg.library} ({len(lib)} left); "
              f"the index was re-derived")
        return {"removed": removed, "items": len(lib)}


def run_index(cfg: Any) -> IndexReport | dict:
    """``index.py``: add the configured corpus to the library, or fsck / repair / rebuild / remove."""
    refuse_renamed_keys(cfg)
    if cfg.command == "fsck":
        return run_fsck(cfg)
    if cfg.command in ("rebuild", "repair", "remove"):
        return run_maintenance(cfg)
    if cfg.command != "add":
        raise ConfigError(f"command: must be add, fsck, repair, rebuild or remove, not {cfg.command!r}")
    policy = AudioPolicy.from_cfg(cfg.get("audio_policy"), windows=False)  # bad input: speechret/audio.py
    cipher = _cipher(cfg)
    hasher = Hasher.from_checkpoint(cfg.ckpt_path, device=cfg.device)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    kwargs = {} if dm.corpus == "synthetic" else dm.corpus_kwargs
    items = list(load_corpus(dm.corpus, dm.root, **kwargs).filter(**dm.select))
    index_cfg = {"kind": cfg.index.kind, "params": dict(cfg.index.get("params") or {})}
    lib = open_or_create(cfg.library, hasher, cipher, cfg.ckpt_path, index_cfg, force=bool(cfg.get("force", False)),
                         keyed_codes=bool(cfg.get("keyed_codes", False)))
    report = index_items(lib, hasher, items, cipher, batch_size=cfg.batch_size, progress=cfg.progress,
                         policy=policy)
    print(f"[speechret] library {cfg.library}: {len(lib)} items ({report.added} added, "
          f"{report.skipped_existing} already there, {len(report.failed)} failed) in {report.wall_seconds:.1f} s, "
          f"{report.seconds_of_audio_per_second:.1f} s of audio per second")
    for path, why in report.failed:
        print(f"  skipped {why}")
    return report


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="index")
def main(cfg: Any) -> None:
    """``speechret index`` / ``python index.py`` (both refuse raw key material on the command line
    first: :func:`speechret.crypto.keys.cli_guard`): :func:`run_index`, an error as one line."""
    try:
        run_index(cfg)
    except SpeechretError as exc:  # a clear message, not a traceback under Hydra's override echo
        raise SystemExit(f"error: {exc}") from None
