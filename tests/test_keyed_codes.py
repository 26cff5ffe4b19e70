"""Keyed codes (speechret/hashing/keyed.py): a secret permutation + XOR mask from the library key.
Distances are preserved exactly (so search is unchanged); codes under another key, or from the
public model without the key, do not retrieve."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speechret.crypto import build_cipher
from speechret.hashing import get_hash_method, hamming, pack_bits
from speechret.hashing.keyed import KeyedCodes
from speechret.hashing.sliding import as_words
from speechret.library import LibraryError, SpeechLibrary
from speechret.library.sealing import Sealer

D, C = 48, 4


def _key(seed: int) -> bytes:
    return bytes(np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8))


def _codes(method: str, n: int, rng):
    if method == "paper_c":
        return [rng.random((int(rng.integers(1, 9)), 27)) < 0.5 for _ in range(n)]
    codes = rng.random((n, D)) < 0.5
    if method == "paper_b":
        codes[:, :C] = np.eye(C, dtype=bool)[rng.integers(0, C, n)]
    return codes


def _method(name: str):
    return get_hash_method(name, code_bits=27 if name == "paper_c" else D, n_classes=C)


@pytest.mark.parametrize("name", ["paper_a", "paper_b", "paper_c"])
@pytest.mark.parametrize("seed", range(5))
def test_distances_preserved_exactly(name, seed):
    rng = np.random.default_rng(seed)
    keyed = KeyedCodes(_key(seed), _method(name))
    codes = _codes(name, 40, rng)
    out = keyed.apply(codes)
    if name == "paper_c":
        flat, kflat = np.concatenate(codes), np.concatenate(out)
        assert [len(s) for s in out] == [len(s) for s in codes]
        assert np.array_equal(hamming(pack_bits(flat), pack_bits(flat)), hamming(pack_bits(kflat), pack_bits(kflat)))
        assert not np.array_equal(flat, kflat)
        words = keyed.apply([as_words(s) for s in codes])  # uint32 words in, words out, same transform
        assert all(np.array_equal(w, as_words(k)) for w, k in zip(words, out))
    else:
        assert np.array_equal(hamming(pack_bits(codes), pack_bits(codes)), hamming(pack_bits(out), pack_bits(out)))
        assert np.array_equal(keyed.apply(pack_bits(codes)), pack_bits(out))  # packed in, packed out
        assert (out != codes).mean() > 0.3
        if name == "paper_b":  # the category code stays (stage 1 still selects the same items)
            assert np.array_equal(out[:, :C], codes[:, :C])
    # deterministic per key, different under another key
    again = KeyedCodes(_key(seed), _method(name)).apply(codes)
    other = KeyedCodes(_key(seed + 100), _method(name)).apply(codes)
    same = np.concatenate if name == "paper_c" else np.asarray
    assert np.array_equal(same(again), same(out)) and not np.array_equal(same(other), same(out))


def _library(tmp_path, name: str, keyed: bool, seed: int = 0) -> SpeechLibrary:
    manifest = {"hash_method": name, "code_bits": 27 if name == "paper_c" else D, "n_classes": C,
                "index": {"kind": "flat", "params": {}}, "keyed_codes": keyed}
    if name != "paper_b":
        manifest.pop("n_classes")
    return SpeechLibrary.create(tmp_path / f"{name}-{keyed}-{seed}", manifest, build_cipher("aes_gcm", _key(seed)))


def _items(n: int):
    return [{"item_id": f"u{i:03d}", "pcm": np.full(50, i, np.int16), "sample_rate": 16000, "text": f"w{i}"}
            for i in range(n)]


@pytest.mark.parametrize("name", ["paper_a", "paper_b"])
def test_keyed_library_search_equals_plain_and_foreign_codes_do_not_retrieve(tmp_path, name):
    rng = np.random.default_rng(1)
    n = 200
    db = _codes(name, n, rng)
    plain, keyed = _library(tmp_path, name, False), _library(tmp_path, name, True)
    for lib in (plain, keyed):
        lib.add_batch(_items(n), db)
    assert json.loads((keyed.path / "manifest.json").read_text())["keyed_codes"] is True
    _, _, stored = keyed.load_codes()
    assert not np.array_equal(stored, pack_bits(db))  # the server never holds the public model's codes
    noisy = db.copy()
    flip = rng.random(noisy.shape) < 0.05
    flip[:, :C] = False
    noisy ^= flip
    search = (lambda lib, q, **kw: lib.search_two_stage(q, k=3, **kw)) if name == "paper_b" else \
        (lambda lib, q, **kw: lib.search_topk(q, 3, **kw))
    assert search(keyed, noisy) == search(plain, noisy)  # exactly the same hits and distances

    def top1(results):
        return np.mean([bool(r) and r[0]["item_id"] == f"u{i:03d}" for i, r in enumerate(results)])

    assert top1(search(keyed, noisy)) > 0.95
    # the public model's codes without the key (as a server or an outsider would make them)
    server = SpeechLibrary.open(keyed.path)
    with pytest.raises(LibraryError, match="keyed codes"):
        search(server, noisy)
    chance = 3.0 / n if name == "paper_a" else 3.0 * C / n
    assert top1(search(server, noisy, prekeyed=True)) <= max(chance * 3, 0.05)
    # codes keyed under another key
    other = KeyedCodes(Sealer(build_cipher("aes_gcm", _key(9))).code_secret, keyed.hashing).apply(noisy)
    assert top1(search(server, other, prekeyed=True)) <= max(chance * 3, 0.05)
    # the client keys the query itself and the keyless server answers it exactly
    mine = KeyedCodes(keyed.sealer.code_secret, keyed.hashing).apply(noisy)
    hits = search(server, mine, prekeyed=True)
    assert [[(h["row"], h["ber"]) for h in q] for q in hits] == \
           [[(h["row"], h["ber"]) for h in q] for q in search(plain, noisy)]
    # a reopened keyed library (with its key) answers as before; rebuilding changes nothing
    keyed.close()
    again = SpeechLibrary.open(keyed.path, build_cipher("aes_gcm", _key(0)))
    again.rebuild()
    assert search(again, noisy) == search(plain, noisy) and again.fsck(deep=True)["ok"]


def test_keyed_paper_c_sliding_search_is_exact(tmp_path):
    rng = np.random.default_rng(2)
    db = _codes("paper_c", 60, rng)
    plain, keyed = _library(tmp_path, "paper_c", False), _library(tmp_path, "paper_c", True)
    for lib in (plain, keyed):
        lib.add_batch(_items(60), db)
    long = next(i for i, s in enumerate(db) if len(s) >= 5)
    for query in (db[long][1:4], db[3], _codes("paper_c", 1, rng)[0]):
        for mode in ("keyword", "full_speech"):
            assert keyed.search_keyword(query, 0.3, mode=mode) == plain.search_keyword(query, 0.3, mode=mode)
    hits = keyed.search_keyword(db[long][1:4], 0.0)
    assert (f"u{long:03d}", (1, 4)) in [(h["item_id"], h["span"]) for h in hits]
    server = SpeechLibrary.open(keyed.path)
    unkeyed = server.search_keyword(db[long][1:4], 0.0, prekeyed=True)  # the public model's groups
    assert (long, (1, 4)) not in [(h["row"], h["span"]) for h in unkeyed]
