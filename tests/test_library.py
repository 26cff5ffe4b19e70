"""The on-disk encrypted speech library: crash safety, idempotence, integrity, search parity."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from speechret.crypto import AuthenticationError, WrongKeyError, build_cipher
from speechret.hashing import pack_bits
from speechret.library import IntegrityError, SpeechLibrary
from speechret.search.keyword import keyword_search_bruteforce
from speechret.search.matchers import (
    threshold_search_bruteforce,
    topk_search_bruteforce,
    two_stage_bruteforce,
)

D = 48          # paper A / B code bits
C = 4           # paper B categories


def _cipher(seed: int = 0):
    return build_cipher("aes_gcm", bytes(np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8)))


def _items(start: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    return [{"item_id": f"utt-{i:04d}", "source": f"/data/utt-{i:04d}.wav",
             "pcm": rng.integers(-32768, 32767, int(rng.integers(200, 800)), dtype=np.int16),
             "sample_rate": 16000, "speaker": f"spk{i % 3}", "label": i % 5, "text": f"word {i}"}
            for i in range(start, start + n)]


def _codes_a(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, D)) < 0.5


def _codes_b(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h1 = np.eye(C, dtype=bool)[rng.integers(0, C, n)]
    return np.concatenate([h1, rng.random((n, D - C)) < 0.5], axis=1)


def _codes_c(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((int(rng.integers(3, 12)), 27)) < 0.5 for _ in range(n)]


def _manifest(method: str, **extra) -> dict:
    m = {"hash_method": method, "code_bits": 27 if method == "paper_c" else D,
         "model": {"name": "test"}, "hash": {}, "index": {"kind": "flat", "params": {}}}
    if method == "paper_b":
        m["n_classes"] = C
    m.update(extra)
    return m


CODES = {"paper_a": _codes_a, "paper_b": _codes_b, "paper_c": _codes_c}


def _lib(tmp_path, method="paper_a", cipher=None, **extra):
    return SpeechLibrary.create(tmp_path / "lib", _manifest(method, **extra), cipher or _cipher())


# --------------------------------------------------------------------------------- basics
def test_create_open_round_trip(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"weights")
    cipher = _cipher()
    lib = _lib(tmp_path, cipher=cipher, checkpoint=str(ckpt))
    lib.close()
    man = json.loads((tmp_path / "lib" / "manifest.json").read_text())
    assert man["hash_method"] == "paper_a" and man["code_bits"] == D and man["format_version"] == 2
    assert man["cipher"] == "aes_gcm" and man["key_id"] == cipher.key_id
    import hashlib
    assert man["checkpoint_sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert man["checkpoint_name"] == "model.ckpt" and str(tmp_path) not in json.dumps(man)  # no paths
    raw = (tmp_path / "lib" / "manifest.json").read_bytes()
    assert cipher._key.hex().encode() not in raw and cipher._key not in raw
    with SpeechLibrary.open(tmp_path / "lib", cipher) as lib2:
        assert len(lib2) == 0 and lib2.method == "paper_a"
        assert lib2._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(FileExistsError):
        _lib(tmp_path)


def test_add_two_batches_reopen_and_idempotent(tmp_path):
    cipher = _cipher()
    lib = _lib(tmp_path, cipher=cipher)
    b1, b2 = _items(0, 5, 1), _items(5, 4, 2)
    c1, c2 = _codes_a(5, 1), _codes_a(4, 2)
    assert len(lib.add_batch(b1, c1)) == 5
    assert len(lib.add_batch(b2, pack_bits(c2))) == 4  # packed codes accepted too
    lib.close()
    lib = SpeechLibrary.open(tmp_path / "lib", cipher)
    assert len(lib) == 9
    ids = [it["item_id"] for it in lib.items()]
    assert ids == [f"utt-{i:04d}" for i in range(9)] and len(set(ids)) == 9
    assert [it["row"] for it in lib.items()] == list(range(9))
    assert lib.add_batch(b1, c1) == [] and lib.add_batch(b2, c2) == []  # no-op
    # a batch mixing old and new items only adds the new ones (and repeats within a batch once)
    b3 = _items(8, 3, 3)
    assert lib.add_batch(b3 + b3[-1:], _codes_a(4, 3)) == ["utt-0009", "utt-0010"]
    assert len(lib) == 11
    for it in b1 + b2:  # decrypted audio is bit-exact, metadata kept
        out = lib.decrypt(it["item_id"])
        assert out.dtype == np.int16 and np.array_equal(out, it["pcm"])
        meta = lib.item(it["item_id"])
        assert meta["speaker"] == it["speaker"] and meta["label"] == it["label"] and meta["text"] == it["text"]
        assert meta["duration"] == pytest.approx(len(it["pcm"]) / 16000)
    rows, ids, codes = lib.load_codes()
    assert np.array_equal(codes[:9], pack_bits(np.concatenate([c1, c2])))
    st = lib.stats()
    assert st["items"] == 11 and st["blob_bytes"] > 0
    assert lib.fsck()["ok"]


# --------------------------------------------------------------------------------- crashes
def test_crash_between_blobs_and_commit(tmp_path, monkeypatch):
    lib = _lib(tmp_path)
    b1, c1 = _items(0, 3, 1), _codes_a(3, 1)
    lib.add_batch(b1, c1)
    b2, c2 = _items(3, 4, 2), _codes_a(4, 2)

    def crash(rows):
        raise KeyboardInterrupt("simulated crash before the transaction")

    monkeypatch.setattr(lib, "_insert_rows", crash)
    with pytest.raises(KeyboardInterrupt):
        lib.add_batch(b2, c2)
    monkeypatch.undo()
    assert len(lib) == 3 and not any(lib.has(it["item_id"]) for it in b2)
    report = lib.fsck()
    assert len(report["orphans"]) == 4 and not report["missing"] and not report["corrupt"]
    for it in b1:
        assert np.array_equal(lib.decrypt(it["item_id"]), it["pcm"])
    # re-running the add completes it (orphan blobs overwritten), no duplicates
    assert len(lib.add_batch(b1 + b2, np.concatenate([c1, c2]))) == 4
    assert len(lib) == 7 and lib.fsck()["ok"]
    for it in b2:
        assert np.array_equal(lib.decrypt(it["item_id"]), it["pcm"])


def test_fsck_removes_orphans(tmp_path, monkeypatch):
    lib = _lib(tmp_path)
    monkeypatch.setattr(lib, "_insert_rows", lambda rows: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError):
        lib.add_batch(_items(0, 2, 1), _codes_a(2, 1))
    monkeypatch.undo()
    assert len(lib.fsck(remove=True)["orphans"]) == 2
    assert lib.fsck()["ok"] and not list((tmp_path / "lib" / "blobs").rglob("*.bin"))


def test_crash_inside_transaction_rolls_back(tmp_path, monkeypatch):
    lib = _lib(tmp_path)
    b1, c1 = _items(0, 3, 1), _codes_a(3, 1)
    lib.add_batch(b1, c1)
    b2, c2 = _items(3, 5, 2), _codes_a(5, 2)
    real = SpeechLibrary._insert_row
    calls = {"n": 0}

    def flaky(self, conn, r):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash midway through the transaction")
        real(self, conn, r)

    monkeypatch.setattr(SpeechLibrary, "_insert_row", flaky)
    with pytest.raises(RuntimeError, match="midway"):
        lib.add_batch(b2, c2)
    monkeypatch.undo()
    assert len(lib) == 3 and [it["item_id"] for it in lib.items()] == [it["item_id"] for it in b1]
    # a second connection sees the same (nothing half-committed)
    other = sqlite3.connect(tmp_path / "lib" / "library.db")
    assert other.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 3
    other.close()
    # commit itself failing also rolls back
    monkeypatch.setattr(SpeechLibrary, "_commit", lambda self, conn: (_ for _ in ()).throw(RuntimeError("commit")))
    with pytest.raises(RuntimeError, match="commit"):
        lib.add_batch(b2, c2)
    monkeypatch.undo()
    assert len(lib) == 3
    assert len(lib.add_batch(b2, c2)) == 5 and len(lib) == 8
    assert [it["row"] for it in lib.items()] == list(range(8))


# --------------------------------------------------------------------------------- integrity
def test_tampered_blob_detected(tmp_path):
    cipher = _cipher()
    lib = _lib(tmp_path, cipher=cipher)
    items = _items(0, 2, 1)
    lib.add_batch(items, _codes_a(2, 1))
    victim = "utt-0001"
    p = tmp_path / "lib" / lib.item(victim)["blob_path"]
    data = bytearray(p.read_bytes())
    data[-5] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=victim):
        lib.get_blob(victim)
    with pytest.raises(IntegrityError, match=victim):
        lib.decrypt(victim)
    with pytest.raises(AuthenticationError, match=victim):  # AES-GCM catches it without the checksum
        lib.decrypt(victim, verify=False)
    assert lib.fsck()["corrupt"] == [victim]
    assert np.array_equal(lib.decrypt("utt-0000"), items[0]["pcm"])


def test_wrong_key(tmp_path):
    lib = _lib(tmp_path, cipher=_cipher(0))
    lib.add_batch(_items(0, 1, 1), _codes_a(1, 1))
    lib.close()
    with pytest.raises(WrongKeyError, match="wrong key"):
        SpeechLibrary.open(tmp_path / "lib", _cipher(1))
    lib = SpeechLibrary.open(tmp_path / "lib")  # no cipher: metadata / search only
    with pytest.raises(WrongKeyError):
        lib.decrypt("utt-0000", _cipher(1))
    oid = next(lib.items())["oid"]  # keyless: only opaque ids
    with pytest.raises(WrongKeyError):  # even bypassing the library's key check, the blob says so
        _cipher(1).decrypt(oid, lib.get_blob(oid))


def test_chaotic_cipher_round_trip(tmp_path):
    cipher = build_cipher("rossler", {"demo": True}, transient=100)
    lib = _lib(tmp_path, cipher=cipher)
    items = _items(0, 2, 1)
    lib.add_batch(items, _codes_a(2, 1))
    lib.close()
    lib = SpeechLibrary.open(tmp_path / "lib", cipher)
    for it in items:
        assert np.array_equal(lib.decrypt(it["item_id"]), it["pcm"])
    with pytest.raises(WrongKeyError):
        SpeechLibrary.open(tmp_path / "lib", build_cipher("rossler", [0.5, 0.5, 0.5], transient=100))


# --------------------------------------------------------------------------------- search
def _fill(tmp_path, method, kind="flat", params=None):
    lib = _lib(tmp_path, method, index={"kind": kind, "params": params or {}})
    f = CODES[method]
    lib.add_batch(_items(0, 30, 1), f(30, 1))
    lib.sync_index()
    lib.add_batch(_items(30, 25, 2), f(25, 2))  # picked up lazily by the next search
    return lib


def _plain(rows):
    return [[(d["item_id"], d["ber"]) for d in q] for q in rows]


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_paper_a_search_matches_bruteforce_and_rebuild(tmp_path, kind):
    params = {"nlist": 4, "nprobe": 4} if kind == "ivf" else {}
    lib = _fill(tmp_path, "paper_a", kind, params)
    rows, ids, db = lib.load_codes()
    q = _codes_a(6, 9)
    q[:2] = np.unpackbits(db[[3, 40]], axis=1, count=D, bitorder="little").astype(bool)
    name = dict(zip(rows.tolist(), ids))
    topk = lib.search_topk(q, 5)
    bi, bb = topk_search_bruteforce(db, rows, pack_bits(q), 5, D)
    assert _plain(topk) == [[(name[i], b) for i, b in zip(r, br)] for r, br in zip(bi, bb)]
    assert topk[0][0]["item_id"] == "utt-0003" and topk[0][0]["ber"] == 0 and topk[0][0]["rank"] == 1
    thr = lib.search_threshold(q, 0.4)
    ref = threshold_search_bruteforce(db, rows, pack_bits(q), D, 0.4)
    assert _plain(thr) == [[(name[i], b) for i, b in zip(r, br)] for r, br in ref]
    assert sum(map(len, thr)) > 2
    # rebuild from SQLite gives identical results; so does a fresh open (index loaded from disk)
    assert lib.rebuild() == 55
    assert lib.search_topk(q, 5) == topk and lib.search_threshold(q, 0.4) == thr
    lib.close()
    lib = SpeechLibrary.open(tmp_path / "lib", _cipher())  # the key holder sees its own ids
    assert lib.search_topk(q, 5) == topk and lib.search_threshold(q, 0.4) == thr
    assert lib.stats()["index_high_water"] == 55
    assert len([p for p in (tmp_path / "lib" / "index").iterdir()]) == 1  # old generations removed


def test_incremental_sync_across_reopen(tmp_path):
    cipher = _cipher()
    lib = _lib(tmp_path, cipher=cipher)
    lib.add_batch(_items(0, 10, 1), _codes_a(10, 1))
    assert lib.sync_index() == 10 and lib.sync_index() == 0
    lib.close()
    lib = SpeechLibrary.open(tmp_path / "lib", cipher)
    lib.add_batch(_items(10, 7, 2), _codes_a(7, 2))
    assert lib.sync_index() == 7
    assert lib.matchers()["main"].index.ntotal == 17
    q = _codes_a(3, 5)
    inc = lib.search_topk(q, 17)
    lib.rebuild()
    assert lib.search_topk(q, 17) == inc


def test_paper_b_two_stage_matches_bruteforce(tmp_path):
    lib = _fill(tmp_path, "paper_b")
    rows, ids, db = lib.load_codes()
    name = dict(zip(rows.tolist(), ids))
    bits = np.unpackbits(db, axis=1, count=D, bitorder="little").astype(bool)
    assert [it["category"] for it in lib.items()] == bits[:, :C].argmax(1).tolist()
    q = _codes_b(5, 7)
    q[0] = bits[10]
    res = lib.search_two_stage(q, k=4)
    bi, bb = two_stage_bruteforce(bits, rows, q, C, k=4)
    assert _plain(res) == [[(name[i], b) for i, b in zip(r, br) if i >= 0] for r, br in zip(bi, bb)]
    assert res[0][0]["item_id"] == "utt-0010"
    thr = lib.search_two_stage(q, ber=0.45)
    ref = two_stage_bruteforce(bits, rows, q, C, ber_threshold=0.45)
    assert _plain(thr) == [[(name[i], b) for i, b in zip(r, br)] for r, br in ref]
    full = lib.search_topk(q, 3)
    lib.rebuild()
    assert lib.search_two_stage(q, k=4) == res and lib.search_two_stage(q, ber=0.45) == thr
    assert lib.search_topk(q, 3) == full
    lib.close()
    lib = SpeechLibrary.open(tmp_path / "lib", _cipher())
    assert lib.search_two_stage(q, k=4) == res and lib.search_topk(q, 3) == full


def test_paper_c_keyword_matches_bruteforce(tmp_path):
    lib = _fill(tmp_path, "paper_c")
    rows, ids, seqs = lib.load_codes()
    name = dict(zip(rows.tolist(), ids))
    assert sum(it["n_groups"] for it in lib.items()) == sum(map(len, seqs))
    long = next(i for i, s in enumerate(seqs) if len(s) >= 6)
    queries = [seqs[long][2:5], seqs[40][:3], _codes_c(1, 99)[0][:2]]
    for query in queries:
        for mode in ("keyword", "full_speech"):
            got = lib.search_keyword(query, 0.3, mode=mode)
            ref = keyword_search_bruteforce(seqs, rows, query, 0.3, mode)
            assert [(d["item_id"], d["ber"], d["span"]) for d in got] == \
                   [(name[h.item], h.ber, (h.start, h.end)) for h in ref]
    first = lib.search_keyword(queries[0], 0.3)
    assert (name[int(rows[long])], 0.0, (2, 5)) in [(d["item_id"], d["ber"], d["span"]) for d in first]
    lib.close()
    lib = SpeechLibrary.open(tmp_path / "lib", _cipher())  # index + arrays restored from disk
    assert lib.search_keyword(queries[0], 0.3) == first
    lib.rebuild()
    assert lib.search_keyword(queries[0], 0.3) == first


def test_wrong_method_search_rejected(tmp_path):
    lib = _lib(tmp_path)
    with pytest.raises(Exception, match="paper_c"):
        lib.search_keyword(np.zeros((2, 27), bool), 0.2)


@pytest.mark.parametrize("where", ["blobs", "transaction"])
def test_real_process_crash(tmp_path, where):
    """A process killed (os._exit, no cleanup, no rollback) mid-blobs or mid-transaction."""
    import subprocess
    import sys
    import textwrap

    key = bytes(range(32))
    lib = SpeechLibrary.create(tmp_path / "lib", _manifest("paper_a"), build_cipher("aes_gcm", key))
    lib.add_batch(_items(0, 3, 1), _codes_a(3, 1))
    lib.close()
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
        import test_library as t
        from speechret.crypto import build_cipher
        from speechret.library import SpeechLibrary, store
        lib = SpeechLibrary.open({str(tmp_path / 'lib')!r}, build_cipher("aes_gcm", {key!r}))
        n = {{"n": 0}}
        if {where!r} == "blobs":
            real = store.atomic_write_bytes
            def die(path, data):
                n["n"] += 1
                if n["n"] == 3:
                    os._exit(3)
                real(path, data)
            store.atomic_write_bytes = die
        else:
            real = SpeechLibrary._insert_row
            def die(self, conn, r):
                n["n"] += 1
                if n["n"] == 3:
                    os._exit(3)
                real(self, conn, r)
            SpeechLibrary._insert_row = die
        lib.add_batch(t._items(3, 5, 2), t._codes_a(5, 2))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    lib = SpeechLibrary.open(tmp_path / "lib", build_cipher("aes_gcm", key))
    assert len(lib) == 3 and [it["row"] for it in lib.items()] == [0, 1, 2]
    assert not lib.fsck()["missing"] and not lib.fsck()["corrupt"]
    assert len(lib.add_batch(_items(3, 5, 2), _codes_a(5, 2))) == 5
    assert len(lib) == 8 and lib.fsck()["ok"]
    for it in _items(3, 5, 2):
        assert np.array_equal(lib.decrypt(it["item_id"]), it["pcm"])
