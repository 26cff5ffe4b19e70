"""The pipeline behind ``search.py``: open a library, hash the query audio with the library's
checkpoint, search (:func:`speechret.library.query.search_audio`), print a table or JSON, and
optionally decrypt the hits (the only step that needs the key).

Bad input is refused before any work, with a :class:`~speechret.errors.ConfigError` naming the
parameter: ``mode`` / ``k`` / ``threshold`` / ``gamma`` / ``stage2`` / ``direction``
(:func:`~speechret.library.query.check_search_args`), ``format``, ``audio_policy``, and a query
folder without audio files.  Each bad query file (unreadable, too short, silent, ...: the
``audio_policy`` shared with ``index.py``) is reported on stderr and skipped; the good ones are
still answered.  When no query is usable the run fails.

Model and key (issue 14): ``ckpt_path`` is required (the manifest keeps the checkpoint's file name and
sha256, never a path) and must be the library's checkpoint -- another one is a
:class:`~speechret.library.store.ModelMismatchError` unless ``force=true``. With the library's key
(``use_key``: ``auto`` uses it when the configured key material is at hand) hits are named by
their corpus ids; without it, by the opaque on-disk ids a keyless server sees. Keyed-codes
libraries and ``decrypt=`` need the key.

With ``remote.url`` (and ``remote.token_file``, the read token) the same search runs through the
keyless search service (:func:`run_search_remote`, :mod:`speechret.client`), with the same output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from rich.console import Console
from rich.table import Table

from speechret.audio import SUPPORTED_EXTENSIONS, AudioPolicy
from speechret.config import CONF_DIR, refuse_renamed_keys
from speechret.crypto import WrongKeyError
from speechret.crypto.keys import build_cipher_from_cfg
from speechret.errors import ConfigError, SpeechretError
from speechret.hashing.hasher import Hasher
from speechret.hashing.sliding import DEFAULT_DIRECTION
from speechret.library.query import check_search_args, decrypt_hits, search_audio
from speechret.library.store import SpeechLibrary

#: output formats of ``format=``
FORMATS = ("table", "json")


def _query_files(queries: Any) -> list[Path]:
    """The query files: a file, a list of files, or every audio file under a folder (recursive).
    A folder without audio files is a :class:`ConfigError`; a missing file is kept, to be reported
    as a bad query with the others."""
    if isinstance(queries, (str, Path)):
        p = Path(queries)
        if p.is_dir():
            files = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in SUPPORTED_EXTENSIONS)
            if not files:
                raise ConfigError(f"queries: no audio files in {p} (looked for "
                                  f"{', '.join(sorted(SUPPORTED_EXTENSIONS))}, recursively)")
            return files
        return [p]
    files = [Path(q) for q in queries]
    if not files:
        raise ConfigError("queries: the list of query files is empty")
    return files


def key_configured(cfg_cipher: Any) -> bool:
    """Whether ``cfg_cipher``'s key material is at hand: a key file that exists, an environment
    variable (``key_env`` / ``passphrase_env``) that is set, a passphrase prompt, or a public demo
    key. (The default key file path of ``conf/cipher`` need not exist: then there is no key.)"""
    km = cfg_cipher.get("key_material") or {}
    get = km.get if hasattr(km, "get") else (lambda _k, _d=None: None)
    key_file = get("key_file")
    if key_file not in (None, "", False) and Path(os.path.expanduser(str(key_file))).exists():
        return True
    if any(get(name) and os.environ.get(str(get(name))) for name in ("key_env", "passphrase_env")):
        return True
    return bool(get("passphrase_prompt")) or bool(get("demo"))


def _wants_key(cfg: Any, keyed_codes: bool, where: Any) -> bool:
    """Whether to use the configured key: ``use_key`` asks for it (``true``; ``auto``: when
    :func:`key_configured`), or the library needs it (keyed codes, ``decrypt=``). ``where`` names
    the library (a directory, or the service's URL) in the errors."""
    use_key = cfg.get("use_key", "auto")
    if use_key not in ("auto", True, False):
        raise ConfigError(f"use_key: must be auto, true or false, not {use_key!r}")
    needs = []
    if keyed_codes:
        needs.append("its codes are keyed (keyed_codes)")
    if cfg.decrypt:
        needs.append("decrypt= writes the hits' audio")
    if needs and use_key is False:
        raise ConfigError(f"use_key: false, but library {where} needs its key: {'; '.join(needs)}")
    if needs and not key_configured(cfg.cipher):
        raise ConfigError(f"cipher.key_material: library {where} needs its key ({'; '.join(needs)}), and none "
                          f"is at hand: give cipher.key_material.key_file=<its key file> (or passphrase_env / "
                          f"passphrase_prompt for a passphrase library)")
    return bool(needs) or use_key is True or (use_key == "auto" and key_configured(cfg.cipher))


def _open_library(cfg: Any, lib: SpeechLibrary) -> tuple[SpeechLibrary, Any]:
    """``lib`` reopened with the configured key when :func:`_wants_key`. Returns ``(library,
    cipher or None)``; a wrong key is an error, never a silent fallback."""
    if not _wants_key(cfg, lib.keyed_codes, cfg.library):
        return lib, None  # keyless: hits name items by their opaque ids
    cipher = build_cipher_from_cfg(cfg.cipher)
    lib.close()
    try:
        return SpeechLibrary.open(cfg.library, cipher), cipher
    except WrongKeyError as exc:
        hint = "" if lib.keyed_codes or cfg.decrypt or cfg.get("use_key", "auto") is True else \
            " (use_key=false searches without the key; hits are then named by opaque ids)"
        raise type(exc)(f"{exc}{hint}") from None


def _report(cfg: Any, args: dict, lib: Any, rows: list[dict], cipher: Any, where: Any, n_items: int) -> None:
    """Print the hits (``format``: a table or JSON) and write the decrypted hits (``decrypt``):
    the same output for a local library and one searched through the service (``lib``: a
    :class:`SpeechLibrary` or the client's store; ``cipher``: the key, None when searching keyless)."""
    if cfg.format == "json":
        print(json.dumps(rows, indent=2, default=list))
    else:
        how = f"{cfg.mode} ({args['stage2']})" if cfg.mode == "two_stage" else cfg.mode
        ids = "corpus ids" if cipher is not None else "opaque ids: no key"
        table = Table(title=f"{how} search of {lib.method} library {where} ({n_items} items, {ids})")
        for col in ("query", "rank", "item_id", "BER", "span"):
            table.add_column(col)
        for r in rows:
            table.add_row(Path(r["query"]).name, str(r["rank"]), r["item_id"], f"{r['ber']:.4f}",
                          "" if r["span"] is None else f"{r['span'][0]}-{r['span'][1]}")
        Console(width=140).print(table)
    if cfg.decrypt:
        for path in decrypt_hits(lib, rows, cipher, cfg.decrypt):
            print(f"[speechret] decrypted {path}")


def _search(lib: Any, hasher: Hasher, files: list[Path], policy: AudioPolicy, args: dict) -> list[dict]:
    """:func:`search_audio` over the query files; bad ones reported on stderr and skipped."""
    failed: list[tuple[str, str]] = []
    rows = search_audio(lib, hasher, [str(f) for f in files], policy=policy, failed=failed, **args)
    for _, why in failed:
        print(f"[speechret] bad query skipped: {why}", file=sys.stderr)
    if len(failed) == len(files):
        raise SpeechretError(f"queries: none of the {len(files)} query file(s) could be used (see above)")
    return rows


def run_search_remote(cfg: Any, args: dict, policy: AudioPolicy) -> list[dict]:
    """``search.py remote.url=URL remote.token_file=FILE``: the same search through the keyless
    service (:class:`speechret.client.RemoteLibrary`, read token): the queries are hashed here (and
    keyed, for a keyed-codes library), only codes are sent; hits come back by opaque id and are
    named with the key (:func:`_wants_key`, as locally); ``decrypt=`` fetches the ciphertexts and
    decrypts them here. ``library`` is not used. Output as :func:`run_search`."""
    from speechret.client import RemoteLibrary, remote_from_cfg

    url, token = remote_from_cfg(cfg.remote)
    if not cfg.ckpt_path:
        raise ConfigError(f"ckpt_path: searching {url} by audio needs the library's checkpoint (its manifest names "
                          f"only its file name and sha256); pass ckpt_path=<path>")
    files = _query_files(cfg.queries)
    with RemoteLibrary(url, token, checkpoint=cfg.ckpt_path, force=bool(cfg.get("force", False)),
                       device=cfg.device, policy=policy) as remote:
        keyed_codes = bool(remote.manifest.get("keyed_codes"))
        cipher = build_cipher_from_cfg(cfg.cipher) if _wants_key(cfg, keyed_codes, url) else None
        remote.unlock(cipher)
        check_search_args(**args, lib=remote.store)  # the library's hash method's modes
        rows = _search(remote.store, remote.hasher, files, policy, args)
        _report(cfg, args, remote.store, rows, cipher, url, len(remote))
    return rows


def run_search(cfg: Any) -> list[dict]:
    """``search.py``: query a library with audio files; print a table or JSON; optionally decrypt.

    The query codes come from ``ckpt_path`` (required: a library keeps only its checkpoint's file name
    and sha256); another checkpoint than the library's is a
    :class:`~speechret.library.store.ModelMismatchError` unless ``force``. With the library's key
    (see :func:`_open_library`) hits carry the corpus ids; without it, the opaque ids."""
    refuse_renamed_keys(cfg)
    if cfg.format not in FORMATS:
        raise ConfigError(f"format: must be one of {', '.join(FORMATS)}, not {cfg.format!r}")
    args = {"mode": cfg.mode, "k": cfg.k, "threshold": cfg.threshold, "gamma": cfg.gamma,
            "stage2": cfg.get("stage2", "topk"), "direction": cfg.get("direction", DEFAULT_DIRECTION)}
    check_search_args(**args)
    policy = AudioPolicy.from_cfg(cfg.get("audio_policy"))
    if (cfg.get("remote") or {}).get("url"):
        return run_search_remote(cfg, args, policy)
    lib = SpeechLibrary.open(cfg.library)
    try:
        check_search_args(**args, lib=lib)  # the library's hash method's modes
        ckpt = cfg.ckpt_path
        if not ckpt:
            name = lib.manifest.get("checkpoint_name") or "the checkpoint"
            raise ConfigError(f"ckpt_path: {cfg.library} keeps no checkpoint path (its manifest names only "
                              f"{name} and its sha256); pass ckpt_path=<path to {name}>")
        lib.check_model(ckpt, force=bool(cfg.get("force", False)))  # issue 14 item 5
        files = _query_files(cfg.queries)
        lib, cipher = _open_library(cfg, lib)
    except BaseException:
        lib.close()
        raise
    with lib:
        hasher = Hasher.from_checkpoint(ckpt, device=cfg.device)
        rows = _search(lib, hasher, files, policy, args)
        _report(cfg, args, lib, rows, cipher, cfg.library, len(lib))
    return rows


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="search")
def main(cfg: Any) -> None:
    """``speechret search`` / ``python search.py`` (both refuse raw key material on the command line
    first: :func:`speechret.crypto.keys.cli_guard`): :func:`run_search`, an error as one line. No run
    directory unless ``save_run=true`` (``conf/search.yaml``)."""
    try:
        run_search(cfg)
    except SpeechretError as exc:  # a clear message, not a traceback under Hydra's override echo
        raise SystemExit(f"error: {exc}") from None
