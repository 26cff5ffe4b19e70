"""A library a stranger may hold (issue 14): concurrent writers, tampering, lost files, another
model, and nothing descriptive in clear. Every fault is detected with a message naming the file,
parameter or library, and after the documented recovery (repair, or remove + re-add) the library
is as before: fsck clean, the same items, every item decrypts (no item lost)."""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from speechret.crypto import build_cipher
from speechret.library import LibraryError, ModelMismatchError, SpeechLibrary
from speechret.library.fsck import repair
from speechret.library.lock import LibraryLock

REPO = Path(__file__).resolve().parents[1]
D = 48
KEY = bytes(range(32))
N0 = 12


def _cipher(key: bytes = KEY):
    return build_cipher("aes_gcm", key)


def _item(i: int) -> dict:
    rng = np.random.default_rng(1000 + i)
    return {"item_id": f"spk{i % 3}_word{i:03d}", "source": f"/secret/corpus/spk{i % 3}/word{i:03d}.wav",
            "pcm": rng.integers(-32768, 32767, 300 + i, dtype=np.int16), "sample_rate": 16000,
            "speaker": f"speaker-{i % 3:02d}", "label": i % 5, "text": f"数字{i:03d}"}


def _code(i: int) -> np.ndarray:
    return np.random.default_rng(i).random(D) < 0.5


def _add(lib: SpeechLibrary, ids) -> list[str]:
    ids = list(ids)
    return lib.add_batch([_item(i) for i in ids], np.stack([_code(i) for i in ids]))


@pytest.fixture
def lib_dir(tmp_path) -> Path:
    path = tmp_path / "lib"
    manifest = {"hash_method": "paper_a", "code_bits": D, "model": {"name": "t"}, "hash": {},
                "index": {"kind": "flat", "params": {}}}
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"model weights")
    with SpeechLibrary.create(path, {**manifest, "checkpoint": str(ckpt)}, _cipher()) as lib:
        _add(lib, range(N0))
        lib.sync_index()
    return path


def _assert_intact(path: Path, ids=range(N0)) -> None:
    """fsck clean (keyless and deep), exactly ``ids``, every one decrypts to its audio, search works."""
    with SpeechLibrary.open(path) as keyless:
        report = keyless.fsck()
        assert report["ok"], report
    with SpeechLibrary.open(path, _cipher()) as lib:
        assert lib.fsck(deep=True)["ok"]
        assert len(lib) == len(list(ids))
        for i in ids:
            assert np.array_equal(lib.decrypt(_item(i)["item_id"]), _item(i)["pcm"])
        i = list(ids)[-1]
        assert lib.search_topk(_code(i)[None], 1)[0][0]["item_id"] == _item(i)["item_id"]


def _cfg(name: str, overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose(name, overrides=overrides)


# ------------------------------------------------------------------------------ concurrency
def _writer(path: str, ids: list[int], out) -> None:
    try:
        with SpeechLibrary.open(path, _cipher()) as lib:
            added = []
            for s in range(0, len(ids), 4):
                added += _add(lib, ids[s:s + 4])
        out.put(("ok", added))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        out.put(("error", repr(exc)))


def test_two_writers_and_a_reader_at_once(lib_dir):
    """Two writer processes add overlapping items in small batches while this process searches."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    a, b = list(range(N0, N0 + 40)), list(range(N0 + 16, N0 + 56))
    procs = [ctx.Process(target=_writer, args=(str(lib_dir), ids, out)) for ids in (a, b)]
    for p in procs:
        p.start()
    every = {_item(i)["item_id"] for i in range(N0 + 56)}
    searches = 0
    with SpeechLibrary.open(lib_dir, _cipher()) as reader:
        while any(p.is_alive() for p in procs) or searches < 3:
            q = np.stack([_code(i) for i in (0, N0 + 20)])
            for hits in reader.search_topk(q, 5):
                assert {h["item_id"] for h in hits} <= every
            # the reader only ever sees committed rows below its generation's mark
            assert reader._rows_below(reader._hwm) == reader._count
            searches += 1
    for p in procs:
        p.join(60)
    results = [out.get(timeout=10) for _ in procs]
    assert all(status == "ok" for status, _ in results), results
    added = [i for _, ids in results for i in ids]
    assert len(added) == len(set(added)) == 56  # each item added by exactly one writer
    _assert_intact(lib_dir, range(N0 + 56))


def test_second_writer_times_out_naming_the_library(lib_dir):
    holder = LibraryLock(lib_dir, LibraryError)
    holder.acquire()
    try:
        with SpeechLibrary.open(lib_dir, _cipher()) as lib:
            lib.lock.timeout = 0.3
            with pytest.raises(LibraryError, match=f"library {lib_dir} is locked by another writer"):
                _add(lib, [N0])
            with pytest.raises(LibraryError, match="locked"):
                lib.remove([_item(0)["item_id"]])
    finally:
        holder.release()
    _assert_intact(lib_dir)


# ------------------------------------------------------------------------------ no key needed
def test_fsck_repair_rebuild_need_no_key(lib_dir):
    with SpeechLibrary.open(lib_dir) as lib:
        assert lib.cipher is None and lib.fsck()["ok"] and lib.rebuild() == N0
        hits = lib.search_topk(_code(3)[None], 1)[0]
        assert hits[0]["ber"] == 0 and len(hits[0]["item_id"]) == 32  # opaque id, no metadata
        assert set(lib.item(hits[0]["item_id"])) >= {"row", "duration", "checksum"}
        assert "text" not in lib.item(hits[0]["item_id"])
        with pytest.raises(LibraryError, match="needs the library's key"):
            lib.fsck(deep=True)
    assert repair(lib_dir)["fsck"]["ok"]
    res = _run("fsck", lib_dir)
    assert res["ok"]
    _assert_intact(lib_dir)


def _run(command: str, lib_dir: Path, *extra: str):
    from speechret.apps.index import run_index

    return run_index(_cfg("index", [f"library={lib_dir}", f"command={command}", *extra]))


# ------------------------------------------------------------------------------ tampering
def _sql(lib_dir: Path, statement: str, *args) -> None:
    conn = sqlite3.connect(lib_dir / "library.db")
    conn.execute(statement, args)
    conn.commit()
    conn.close()


def test_renamed_item_id_is_reported_then_removed_and_readded(lib_dir):
    victim = _item(4)
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:
        oid = lib.oid(victim["item_id"])
    _sql(lib_dir, "UPDATE items SET item_id = ? WHERE item_id = ?", "f" * 32, oid)
    with SpeechLibrary.open(lib_dir) as lib:
        report = lib.fsck()
    assert not report["ok"] and report["misnamed"] == ["f" * 32] and report["unrecoverable"] == ["f" * 32]
    with pytest.raises(SystemExit):
        _run("fsck", lib_dir)
    _run("remove", lib_dir, f"ids=[{'f' * 32}]")
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:
        assert _add(lib, [4]) == [victim["item_id"]]
    _assert_intact(lib_dir)


def test_edited_code_is_reported(lib_dir):
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:
        oid = lib.oid(_item(7)["item_id"])
    _sql(lib_dir, "UPDATE items SET code = ? WHERE item_id = ?", bytes(D // 8), oid)
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:
        report = lib.fsck(deep=True)
        assert any("codes of rows [7] differ" in p for p in report["index"]), report["index"]
        assert report["unauthentic"][0]["item"] == oid and "code" in report["unauthentic"][0]["error"]
        lib.remove(report["unrecoverable"])
        _add(lib, [7])
    _assert_intact(lib_dir)


def test_blob_swapped_between_items(lib_dir):
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:
        a, b = (lib.item(_item(i)["item_id"])["blob_path"] for i in (1, 2))
    pa, pb = lib_dir / a, lib_dir / b
    da, db = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(db)
    pb.write_bytes(da)
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:
        report = lib.fsck(deep=True)
        assert sorted(report["corrupt"]) == sorted(_item(i)["item_id"] for i in (1, 2))
        lib.remove([_item(1)["item_id"], _item(2)["item_id"]])
        _add(lib, [1, 2])
    _assert_intact(lib_dir)


def test_missing_blob_is_listed_then_removed_and_readded(lib_dir):
    victim = _item(8)["item_id"]
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:
        (lib_dir / lib.item(victim)["blob_path"]).unlink()
        report = lib.fsck()
        assert report["missing"] == [victim] and report["unrecoverable"] == [victim]
        with pytest.raises(LibraryError, match=rf"item '{victim}': blob blobs/.* of library {lib_dir} is missing"):
            lib.decrypt(victim)
        assert lib.search_topk(_code(8)[None], 1)[0][0]["item_id"] == victim  # codes are intact
    with pytest.raises(SystemExit):
        _run("fsck", lib_dir)
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:
        lib.remove([victim])
        _add(lib, [8])
    _assert_intact(lib_dir)


@pytest.mark.parametrize("fault", ["missing", "garbage", "zeroed", "renamed_mark", "tmp_left"])
def test_damaged_faiss_index_is_refused_then_repaired(lib_dir, fault):
    gen = next(p for p in (lib_dir / "index").iterdir() if p.name.startswith("hw"))
    faiss_file = gen / "main"
    if fault == "missing":
        faiss_file.unlink()
    elif fault == "garbage":
        faiss_file.write_bytes(b"not a faiss index at all" * 10)
    elif fault == "zeroed":
        faiss_file.write_bytes(bytes(faiss_file.stat().st_size))
    elif fault == "renamed_mark":
        gen.rename(gen.with_name(gen.name.replace(f"hw{N0:012d}", f"hw{N0 + 3:012d}")))
    else:
        (lib_dir / "index" / ".tmp-leftover").mkdir()
    with SpeechLibrary.open(lib_dir) as lib:
        report = lib.fsck()
        assert not report["ok"] and (report["index"] or report["tmp"])
        if fault != "tmp_left":
            with pytest.raises(LibraryError, match=rf"index .*hw.* of library {lib_dir}.*command=repair"):
                lib.search_topk(_code(0)[None], 3)
    res = _run("repair", lib_dir)
    assert res["fsck"]["ok"] and not res["unrecoverable"]
    _assert_intact(lib_dir)


def test_deleted_row_never_crashes_search(lib_dir):
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:
        oid = lib.oid(_item(5)["item_id"])
    _sql(lib_dir, "DELETE FROM items WHERE item_id = ?", oid)
    with SpeechLibrary.open(lib_dir) as lib:
        with pytest.raises(LibraryError, match=r"has 12 rows .*the database 11 .*command=repair"):
            lib.search_topk(_code(5)[None], 3)
        report = lib.fsck()
        assert any(o.endswith(f"{oid}.bin") for o in report["orphans"]) and report["index"]
    repair(lib_dir)
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:  # search answers again; the item can be re-added
        assert all(h["item_id"] != _item(5)["item_id"] for h in lib.search_topk(_code(5)[None], 3)[0])
        _add(lib, [5])
    _assert_intact(lib_dir)


def test_reader_survives_a_concurrent_remove(lib_dir):
    with SpeechLibrary.open(lib_dir, _cipher()) as reader, SpeechLibrary.open(lib_dir, _cipher()) as writer:
        assert reader.search_topk(_code(6)[None], 1)[0][0]["item_id"] == _item(6)["item_id"]
        writer.remove([_item(6)["item_id"]])
        hits = reader.search_topk(_code(6)[None], N0)[0]  # the reader reloads, never a KeyError
        assert _item(6)["item_id"] not in {h["item_id"] for h in hits} and len(hits) == N0 - 1
        _add(writer, [6])
    _assert_intact(lib_dir)


# ------------------------------------------------------------------------------ the manifest
@pytest.mark.parametrize("field,value", [("code_bits", 64), ("key_id", "00" * 8), ("cipher", "rossler")])
def test_edited_manifest_field_is_refused_then_restored(lib_dir, field, value):
    mp_ = lib_dir / "manifest.json"
    m = json.loads(mp_.read_text())
    m[field] = value
    mp_.write_text(json.dumps(m))
    with pytest.raises(LibraryError, match=rf"manifest.json differs .*fields {field}.*command=repair"):
        SpeechLibrary.open(lib_dir)
    with pytest.raises(SystemExit):
        _run("fsck", lib_dir)
    assert "restored manifest.json" in " ".join(repair(lib_dir)["actions"])
    _assert_intact(lib_dir)


def test_truncated_manifest_is_restored_by_repair(lib_dir):
    mp_ = lib_dir / "manifest.json"
    mp_.write_bytes(mp_.read_bytes()[:40])
    with pytest.raises(LibraryError, match=r"manifest.json: malformed manifest .*command=repair"):
        SpeechLibrary.open(lib_dir)
    _run("repair", lib_dir)
    assert json.loads(mp_.read_text()) == json.loads((lib_dir / "manifest.json.bak").read_text())
    _assert_intact(lib_dir)


def test_data_without_manifest_gets_no_new_manifest_or_key(lib_dir):
    (lib_dir / "manifest.json").unlink()
    (lib_dir / "manifest.json.bak").unlink()
    manifest = {"hash_method": "paper_a", "code_bits": D, "index": {"kind": "flat", "params": {}}}
    with pytest.raises(LibraryError, match=rf"{lib_dir} holds library data \(library.db\) but no manifest.json"):
        SpeechLibrary.create(lib_dir, manifest, _cipher(bytes(32)))
    with pytest.raises(LibraryError, match="manifest.json is missing: run index.py command=repair"):
        SpeechLibrary.open(lib_dir)
    assert not (lib_dir / "manifest.json").exists()
    repair(lib_dir)  # from the copy in library.db
    _assert_intact(lib_dir)


def test_another_checkpoint_is_refused_unless_forced(lib_dir, tmp_path):
    other = tmp_path / "other.ckpt"
    other.write_bytes(b"other weights")
    with SpeechLibrary.open(lib_dir) as lib:
        lib.check_model(tmp_path / "model.ckpt")
        with pytest.raises(ModelMismatchError, match=rf"checkpoint {other} .*library {lib_dir}.*model.ckpt.*force"):
            lib.check_model(other)
        lib.check_model(other, force=True)
    _assert_intact(lib_dir)


# ------------------------------------------------------------------------------ no plaintext
def test_nothing_descriptive_in_clear(lib_dir, tmp_path):
    with SpeechLibrary.open(lib_dir, _cipher()) as lib:
        meta = lib.item(_item(3)["item_id"])
        assert meta["text"] == _item(3)["text"] and meta["speaker"] == _item(3)["speaker"]
        assert meta["source"] == _item(3)["source"] and meta["label"] == 3
    raw = b"".join(p.read_bytes() for p in lib_dir.rglob("*") if p.is_file())
    names = " ".join(p.relative_to(lib_dir).as_posix() for p in lib_dir.rglob("*")).encode()
    for i in range(N0):
        it = _item(i)
        for secret in (it["text"], it["speaker"], it["source"], it["item_id"], f"word{i:03d}"):
            assert secret.encode() not in raw and secret.encode() not in names, secret
    for secret in ("/secret", str(tmp_path), "spk0", "数字"):
        assert secret.encode() not in raw + names, secret
    man = json.loads((lib_dir / "manifest.json").read_text())
    assert man["checkpoint_name"] == "model.ckpt" and "/" not in json.dumps(man)
