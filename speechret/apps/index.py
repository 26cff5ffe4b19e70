"""The pipeline behind ``index.py``: build the cipher, add a corpus to an encrypted library
(:func:`speechret.library.indexer.index_items`), or check / repair / rebuild / remove items of it
(:mod:`speechret.library.fsck`; none of those needs the key, except ``fsck deep=true`` and removing
by corpus id). With ``remote.url`` (and ``remote.token_file``, the write token) the same items go
through the keyless search service instead (:func:`run_index_remote`, :mod:`speechret.client`)."""

from __future__ import annotations

import logging
from typing import Any

import hydra
from hydra.utils import instantiate

from speechret.audio import AudioPolicy
from speechret.config import CONF_DIR, refuse_renamed_keys
from speechret.crypto.keys import build_cipher_from_cfg  # key hygiene: speechret/crypto/keys.py
from speechret.errors import ConfigError, SpeechretError
from speechret.hashing.hasher import Hasher
from speechret.library.indexer import IndexReport, index_items, open_or_create
from speechret.library.fsck import repair
from speechret.library.store import OPAQUE_ID, LibraryError, SpeechLibrary

log = logging.getLogger(__name__)


def _cipher(cfg: Any) -> Any:
    return build_cipher_from_cfg(cfg.cipher, cfg.get("create_key", False), library=cfg.library)


def _print_fsck(library: Any, res: dict, remote: bool = False) -> None:
    state = "ok" if res["ok"] else "NOT OK"
    print(f"[speechret] fsck {library}: {state} ({res.get('items', '?')} items{', deep' if res.get('deep') else ''})")
    for key in ("manifest", "index", "missing", "corrupt", "misnamed", "orphans", "tmp", "unauthentic"):
        for entry in res.get(key) or []:
            print(f"  {key}: {entry}")
    if remote and not res["ok"]:
        print("  the library is the server's: run index.py command=fsck / repair library=<its directory> there "
              "(or restart the service with repair_on_start=true)")
        return
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
    if cfg.command not in ("add", "fsck", "repair", "rebuild", "remove"):
        raise ConfigError(f"command: must be add, fsck, repair, rebuild or remove, not {cfg.command!r}")
    if (cfg.get("remote") or {}).get("url"):
        return run_index_remote(cfg)
    if cfg.command == "fsck":
        return run_fsck(cfg)
    if cfg.command in ("rebuild", "repair", "remove"):
        return run_maintenance(cfg)
    policy = AudioPolicy.from_cfg(cfg.get("audio_policy"), windows=False)  # bad input: speechret/audio.py
    cipher = _cipher(cfg)
    hasher = Hasher.from_checkpoint(cfg.ckpt_path, device=cfg.device)
    items = corpus_items(cfg)
    index_cfg = {"kind": cfg.index.kind, "params": dict(cfg.index.get("params") or {})}
    lib = open_or_create(cfg.library, hasher, cipher, cfg.ckpt_path, index_cfg, force=bool(cfg.get("force", False)),
                         keyed_codes=bool(cfg.get("keyed_codes", False)))
    report = index_items(lib, hasher, items, cipher, batch_size=cfg.batch_size, progress=cfg.progress,
                         policy=policy)
    _print_report(cfg.library, len(lib), report)
    return report


def corpus_items(cfg: Any) -> list:
    """The items of the data config's corpus (after its ``select``): what ``command=add`` adds,
    locally or through the service."""
    dm = instantiate(cfg.data)
    dm.prepare_data()
    return list(dm.load_manifest().filter(**dm.select))


def _print_report(where: Any, n_items: int, report: Any) -> None:
    rate = report.audio_seconds / report.wall_seconds if report.wall_seconds else 0.0
    print(f"[speechret] library {where}: {n_items} items ({report.added} added, "
          f"{report.skipped_existing} already there, {len(report.failed)} failed) in {report.wall_seconds:.1f} s, "
          f"{rate:.1f} s of audio per second")
    for path, why in report.failed:
        print(f"  skipped {why}")


def run_index_remote(cfg: Any) -> Any:
    """``index.py remote.url=URL remote.token_file=FILE``: the same commands through the keyless
    service (:class:`speechret.client.RemoteLibrary`, write token). ``add`` builds the same items
    (:func:`corpus_items`) and adds them with the library's key (``cipher.key_material``) and
    checkpoint; ``fsck`` is the service's keyless fsck; ``remove`` deletes items (corpus ids with
    the key, opaque ids without). ``library``, ``index`` and ``keyed_codes`` are the served
    library's (``RemoteLibrary.create_library`` makes it); ``deep=true``, ``create_key``,
    ``repair`` and ``rebuild`` are refused (they need the library directory: run them on the server,
    whose ``repair_on_start`` also removes orphans)."""
    from speechret.apps.search import key_configured  # the key's presence, as search.py decides it
    from speechret.client import RemoteLibrary, remote_from_cfg

    url, token = remote_from_cfg(cfg.remote)
    if cfg.command in ("repair", "rebuild"):
        raise ConfigError(f"command: {cfg.command} works on the library directory, not through the service "
                          f"(remote.url); run index.py command={cfg.command} library=<dir> on the server (stopped), "
                          f"or restart the service with repair_on_start=true")
    if cfg.command == "fsck" and cfg.get("deep", False):
        raise ConfigError("deep: command=fsck deep=true authenticates every item with the key, which the service "
                          "never has; through remote.url only the keyless fsck runs (deep=false)")
    if cfg.get("create_key", False):
        raise ConfigError("create_key: a remote library's key already exists (its manifest names the key id); give "
                          "it with cipher.key_material.key_file=... (RemoteLibrary.create_library makes new ones)")
    needs_key = cfg.command == "add" or (cfg.command == "remove" and key_configured(cfg.cipher))
    cipher = build_cipher_from_cfg(cfg.cipher) if needs_key else None
    add = cfg.command == "add"
    policy = AudioPolicy.from_cfg(cfg.get("audio_policy"), windows=False) if add else None
    with RemoteLibrary(url, token, key=cipher, checkpoint=cfg.ckpt_path if add else None,
                       force=bool(cfg.get("force", False)), device=cfg.device, batch_size=cfg.batch_size,
                       policy=policy) as remote:
        if cfg.command == "fsck":
            res = remote.service.fsck()
            _print_fsck(url, res, remote=True)
            if not res["ok"] and cfg.get("exit_on_error", True):
                raise SystemExit(f"[speechret] fsck {url}: not ok")
            return res
        if cfg.command == "remove":
            ids = [str(i) for i in (cfg.get("ids") or [])]
            if not ids:
                raise ConfigError("ids: command=remove needs ids=[<item id>,...] (corpus ids with the key, else "
                                  "opaque ids)")
            removed = remote.remove(ids)
            print(f"[speechret] removed {len(removed)} items from {url} ({len(remote)} left)")
            return {"removed": removed, "items": len(remote)}
        if cfg.get("keyed_codes", False) and not remote.manifest.get("keyed_codes"):
            raise ConfigError(f"keyed_codes: the library at {url} was created without keyed codes, and that is fixed "
                              f"at creation (RemoteLibrary.create_library(..., keyed_codes=True) makes a new one)")
        report = remote.add(corpus_items(cfg), progress=bool(cfg.progress))
        _print_report(url, len(remote), report)
        return report


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="index")
def main(cfg: Any) -> None:
    """``speechret index`` / ``python index.py`` (both refuse raw key material on the command line
    first: :func:`speechret.crypto.keys.cli_guard`): :func:`run_index`, an error as one line."""
    try:
        run_index(cfg)
    except SpeechretError as exc:  # a clear message, not a traceback under Hydra's override echo
        raise SystemExit(f"error: {exc}") from None
