"""Checking and repairing a library without its key (``index.py command=fsck|repair|remove``).

:func:`fsck` (no key) checks

* **rows vs blobs**: every row's id is opaque (128-bit hex) and names its blob
  (``blobs/<aa>/<id>.bin``); the blob exists and its sha256 equals the row's checksum;
  blobs without a row (``orphans``: left by a crash before a commit) and temp leftovers;
* **the manifest vs the data**: ``manifest.json`` equals the copy kept in ``library.db`` and its
  backup; every stored code has the width the manifest's ``code_bits`` implies;
* **the FAISS index vs SQLite**: the newest generation loads, its high-water mark and row count
  agree with SQLite, and it holds exactly the ids and (for a sample of rows) the codes that a
  fresh derivation from SQLite holds.

``deep=True`` (needs the key) also authenticates every item: its sealed metadata (AES-GCM, item
id as associated data) opens, names this id (``HMAC(source id)``) and the digests of the stored
code and blob, and the blob decrypts. :func:`repair` restores the manifest from the database copy
(or the backup), removes orphans and temp leftovers and re-derives the index; items whose blob or
row is unrecoverable are listed, to be removed (:meth:`SpeechLibrary.remove`) and re-added.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from speechret.library.generations import INDEX_DIR, item_count
from speechret.library.store import (
    BLOBS,
    DB_NAME,
    MANIFEST,
    MANIFEST_BAK,
    OPAQUE_ID,
    LibraryError,
    SpeechLibrary,
    blob_relpath,
    db_manifest,
    file_sha256,
    write_manifest,
)
from speechret.search.milvus import drop_scratch

__all__ = ["fsck", "repair"]

SAMPLE = 1000


def _faiss_parts(matcher: Any) -> dict[str, Any]:
    """The FAISS indexes inside a matcher, by name."""
    if hasattr(matcher, "indexes"):
        return {f"cat{c}": i for c, i in matcher.indexes.items()}
    return {"index": matcher.index}


def _ids(index: Any) -> np.ndarray:
    return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64)) if hasattr(index, "id_map") else \
        np.arange(index.ntotal, dtype=np.int64)


def _compare_index(saved: dict[str, Any], fresh: dict[str, Any], rng: np.random.Generator) -> list[str]:
    """Differences between saved matchers and ones derived afresh from SQLite."""
    problems = []
    for name, m in fresh.items():
        s = saved.get(name)
        if s is None:
            problems.append(f"matcher {name!r} is missing")
            continue
        for arr in ("item_ids", "words"):  # grouped sequences (paper C) kept beside the index
            if hasattr(m, arr) and not np.array_equal(getattr(m, arr), getattr(s, arr, None)):
                problems.append(f"matcher {name!r}: stored {arr} differ from the database's codes")
        sp, fp = _faiss_parts(s), _faiss_parts(m)
        if sorted(sp) != sorted(fp):
            problems.append(f"matcher {name!r}: parts {sorted(sp)}, the database implies {sorted(fp)}")
            continue
        for part, fi in fp.items():
            si = sp[part]
            ids, sids = _ids(fi), _ids(si)
            if not np.array_equal(ids, sids):
                extra, lost = np.setdiff1d(sids, ids), np.setdiff1d(ids, sids)
                problems.append(f"matcher {name!r} {part}: ids differ from the database "
                                f"(rows not in it: {extra[:10].tolist()}, rows missing: {lost[:10].tolist()})")
                continue
            sample = ids if len(ids) <= SAMPLE else rng.choice(ids, SAMPLE, replace=False)
            try:
                bad = [int(i) for i in sample
                       if not np.array_equal(si.reconstruct(int(i)), fi.reconstruct(int(i)))]
            except RuntimeError:  # an index kind that cannot reconstruct (IVF without direct map)
                continue
            if bad:
                problems.append(f"matcher {name!r} {part}: codes of rows {bad[:10]} differ from the database")
    return problems


def _check_index(lib: SpeechLibrary, report: dict) -> None:
    cur = lib.generations.current()
    if cur is None:
        return
    hw, directory = cur
    rel = directory.relative_to(lib.path).as_posix()
    try:
        saved, state = lib.generations.load(directory), lib.generations.state(directory)
        held = item_count(saved)
    except Exception as exc:  # noqa: BLE001 - any unreadable FAISS / state file
        report["index"].append(f"{rel} is unreadable ({type(exc).__name__}: {exc})")
        return
    in_db = lib._rows_below(hw)
    if state.get("high_water") != hw:
        report["index"].append(f"{rel}: state.json says high-water mark {state.get('high_water')}, "
                               f"the directory name {hw}")
    if state.get("count") != held or held != in_db:
        report["index"].append(f"{rel} has {held} rows (state.json {state.get('count')}), the database "
                               f"{in_db} below the mark {hw}")
    db_hw = lib._db_high_water()
    if hw > db_hw:
        report["index"].append(f"{rel}: high-water mark {hw} beyond the database's {db_hw}")
    fresh = lib.generations.new()
    rows, _, codes = lib._codes(max_row=hw)
    try:
        try:
            lib.generations.add(fresh, rows, codes)
        except Exception as exc:  # noqa: BLE001
            report["manifest"].append(f"stored codes do not fit the manifest's hash method ({exc})")
            return
        report["index"] += [f"{rel}: {p}" for p in _compare_index(saved, fresh, np.random.default_rng(0))]
    finally:
        drop_scratch(fresh)  # a Milvus index's fresh derivation lives in collections; FAISS: nothing to do


def _check_manifest(lib: SpeechLibrary, report: dict) -> None:
    path = lib.path
    raw = (path / MANIFEST).read_bytes()
    copy = db_manifest(path)
    if copy is None:
        report["manifest"].append(f"{DB_NAME} keeps no copy of {MANIFEST}")
    elif json.loads(copy) != json.loads(raw):
        report["manifest"].append(f"{MANIFEST} differs from the copy in {DB_NAME}")
    bak = path / MANIFEST_BAK
    if not bak.is_file() or bak.read_bytes() != raw:
        report["manifest"].append(f"{MANIFEST_BAK} is missing or differs from {MANIFEST}")
    h = lib.hashing
    nbytes = None if h.variable_length else (int(lib.code_bits) + 7) // 8
    bad = []
    for oid, code, groups in lib._conn.execute("SELECT item_id, code, n_groups FROM items"):
        want = 4 * (groups or 0) if h.variable_length else nbytes
        if len(code) != want:
            bad.append(oid)
    if bad:
        report["manifest"].append(f"{len(bad)} stored codes do not have the width code_bits={lib.code_bits} "
                                  f"implies (e.g. {bad[:5]})")


def _deep(lib: SpeechLibrary, report: dict) -> None:
    lib._need_cipher(None, "fsck deep=true")
    for oid, code, checksum, sealed in lib._conn.execute(
            "SELECT item_id, code, checksum, meta FROM items ORDER BY row").fetchall():
        try:
            meta = lib.sealer.open(oid, sealed)
            if lib.sealer.item_id(str(meta.get("id"))) != oid:
                raise LibraryError("its sealed metadata names another item id")
            if meta.get("code_sha256") != hashlib.sha256(code).hexdigest():
                raise LibraryError("its stored code differs from the code it was added with")
            if meta.get("blob_sha256") != checksum:
                raise LibraryError("its blob checksum differs from the one it was added with")
            lib.cipher.decrypt(oid, lib.get_blob(oid))
        except Exception as exc:  # noqa: BLE001 - report every failing item, keep going
            report["unauthentic"].append({"item": oid, "error": f"{type(exc).__name__}: {exc}"})


def _name(lib: SpeechLibrary, oid: str) -> str:
    """The caller's id of ``oid`` when its sealed metadata opens, else ``oid``."""
    try:
        r = lib._conn.execute("SELECT meta FROM items WHERE item_id = ?", (oid,)).fetchone()
        return lib._public(oid, lib.sealer.open(oid, r[0]))
    except Exception:  # noqa: BLE001 - tampered metadata: the opaque id still names the item
        return oid


def fsck(lib: SpeechLibrary, remove: bool = False, verify_checksums: bool = True, deep: bool = False) -> dict:
    """Check ``lib`` (see the module docstring). Returns a report: ``ok``, ``items``,
    ``orphans`` / ``tmp`` (files, relative), ``missing`` / ``corrupt`` / ``misnamed`` (item ids),
    ``manifest`` / ``index`` (problems, text), ``unauthentic`` (deep: ``{item, error}``) and
    ``unrecoverable`` (ids to remove and re-add). ``remove=True`` deletes orphans and temp
    leftovers; it scans and deletes under the writer lock, so a blob a concurrent writer has
    written but not yet committed is never taken for an orphan."""
    if remove:
        with lib.lock():
            return _fsck(lib, True, verify_checksums, deep)
    return _fsck(lib, False, verify_checksums, deep)


def _fsck(lib: SpeechLibrary, remove: bool, verify_checksums: bool, deep: bool) -> dict:
    report: dict[str, Any] = {"ok": True, "library": str(lib.path), "items": len(lib), "orphans": [], "tmp": [],
                              "missing": [], "corrupt": [], "misnamed": [], "manifest": [], "index": [],
                              "unauthentic": [], "unrecoverable": [], "deep": bool(deep)}
    known: dict[str, str] = {}
    for oid, rel, chk in lib._conn.execute("SELECT item_id, blob_path, checksum FROM items").fetchall():
        if not OPAQUE_ID.match(oid) or rel != blob_relpath(oid):
            report["misnamed"].append(oid)
        known[rel] = oid
        p = lib.path / rel
        if not p.is_file():
            report["missing"].append(oid)
        elif verify_checksums and file_sha256(p) != chk:
            report["corrupt"].append(oid)
    for p in sorted((lib.path / BLOBS).rglob("*")):
        if p.is_file():
            rel = p.relative_to(lib.path).as_posix()
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                report["tmp"].append(rel)
            elif rel not in known:
                report["orphans"].append(rel)
    idx = lib.path / INDEX_DIR
    if idx.is_dir():
        report["tmp"] += [p.relative_to(lib.path).as_posix() for p in idx.iterdir() if p.name.startswith(".")]
    _check_manifest(lib, report)
    _check_index(lib, report)
    if deep:
        _deep(lib, report)
    if lib.sealer is not None:  # a key holder reads its own ids
        for k in ("missing", "corrupt", "misnamed"):
            report[k] = [_name(lib, oid) for oid in report[k]]
    bad = report["missing"] + report["corrupt"] + report["misnamed"] + [u["item"] for u in report["unauthentic"]]
    report["unrecoverable"] = list(dict.fromkeys(bad))
    if remove:  # the caller holds the writer lock
        for rel in report["orphans"] + report["tmp"]:
            p = lib.path / rel
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    report["ok"] = not any(report[k] for k in ("orphans", "tmp", "missing", "corrupt", "misnamed", "manifest",
                                                "index", "unauthentic"))
    return report


def restore_manifest(path: str | Path) -> str | None:
    """Rewrite a missing, malformed or edited ``manifest.json`` (and its backup) from the copy in
    ``library.db``, else from ``manifest.json.bak``. Returns what was done, or None."""
    path = Path(path)
    copy = db_manifest(path)
    source = DB_NAME
    if copy is None and (path / MANIFEST_BAK).is_file():
        copy, source = (path / MANIFEST_BAK).read_bytes(), MANIFEST_BAK
    if copy is None:
        return None
    try:
        json.loads(copy)
    except ValueError as exc:
        raise LibraryError(f"{path}: the manifest copy in {source} is unreadable too ({exc}); restore "
                           f"{MANIFEST} from a backup") from exc
    mp = path / MANIFEST
    try:
        same = mp.is_file() and json.loads(mp.read_bytes()) == json.loads(copy)
    except ValueError:
        same = False
    bak_ok = (path / MANIFEST_BAK).is_file() and (path / MANIFEST_BAK).read_bytes() == copy
    if same and bak_ok:
        return None
    write_manifest(path, copy)
    return f"restored {MANIFEST} and {MANIFEST_BAK} from {source}"


def repair(path: str | Path, cipher: Any = None) -> dict:
    """Repair the library at ``path`` without its key: restore the manifest, remove orphans and
    temp leftovers, re-derive the index from SQLite. Returns ``{actions, unrecoverable, fsck}``
    (the fsck report after the repair)."""
    path = Path(path)
    if not (path / DB_NAME).is_file():
        raise LibraryError(f"{path}: no {DB_NAME}, nothing to repair")
    actions = []
    restored = restore_manifest(path)
    if restored:
        actions.append(restored)
    with SpeechLibrary.open(path, cipher) as lib:
        with lib.lock():
            before = fsck(lib, remove=True)
            if before["orphans"] or before["tmp"]:
                actions.append(f"removed {len(before['orphans'])} orphan blobs and {len(before['tmp'])} temp leftovers")
            n = lib.rebuild()
            actions.append(f"re-derived the index from SQLite ({n} rows)")
            after = fsck(lib)
    return {"actions": actions, "unrecoverable": after["unrecoverable"], "fsck": after}
