"""The public Python API (speechret/api.py): the README example runs; API searches equal the
search app's path (speechret.library.query.search_audio / search_codes) on the same library and
queries, and a library the API builds equals one the index app's path builds; decrypt is
bit-exact; fsck; the errors name what is wrong.

Models are random-weight checkpoints (test_export.random_checkpoint): the properties under test
are "same computation, same answers", which need a deterministic model, not a trained one. The
audio is speech-like synthetic clips (test_export.clip), written as 16-bit WAV.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from speechret import Hasher, Library, SearchHit, SearchResult
from speechret.audio import load_audio, to_pcm16
from speechret.crypto import WrongKeyError, build_cipher, generate_key_file
from speechret.errors import ConfigError
from speechret.library import LibraryError, ModelMismatchError, SpeechLibrary
from speechret.library.indexer import index_items, open_or_create
from speechret.library.query import search_audio, search_codes
from speechret.data.manifest import Item

from test_export import REPO, SR, clip, random_checkpoint

pytestmark = pytest.mark.usefixtures("one_faiss_thread")

N_FILES = 8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("api")
    ckpt = random_checkpoint("speechret_hash", d, "model.net.channels=[8,16,32,32]")
    files = []
    for i in range(N_FILES):
        p = d / "audio" / f"utt{i:02d}.wav"
        p.parent.mkdir(exist_ok=True)
        sf.write(str(p), clip(int(SR * (0.6 + 0.15 * i)), 100 + i), SR, subtype="PCM_16")
        files.append(str(p))
    key = generate_key_file(d / "lib.key")
    lib_dir = d / "lib"
    with Library.create(lib_dir, checkpoint=ckpt, key=key) as lib:
        rep = lib.add([(f, {"id": f"item{i}", "speaker": f"s{i % 2}", "label": i % 3, "text": f"t{i}"})
                       for i, f in enumerate(files)])
    assert rep.added == N_FILES and not rep.failed
    return {"dir": d, "ckpt": ckpt, "files": files, "key": key, "lib": lib_dir}


# ------------------------------------------------------------------------------ README
def readme_block(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(heading + "\n")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_readme_python_api_example_runs(setup, tmp_path, capsys):
    ns = {"checkpoint": setup["ckpt"], "files": setup["files"][:4], "key_file": str(tmp_path / "new.key"),
          "library_dir": str(tmp_path / "readme_lib")}
    exec(compile(readme_block("## Python API"), "README.md", "exec"), ns)
    out = capsys.readouterr().out
    assert "4 added, 0 skipped" in out and "BER 0.000" in out  # a file finds itself first
    assert isinstance(ns["result"], SearchResult) and ns["result"].hits[0].metadata["source"] == setup["files"][0]
    assert np.array_equal(ns["item"].pcm, to_pcm16(load_audio(setup["files"][0], SR)))


def test_import_speechret_stays_light():
    code = "import sys, speechret; print(sorted(m for m in ('torch', 'faiss', 'hydra', 'lightning') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr


# ------------------------------------------------------------------------------ equal to the apps' path
def _rows(results: list[SearchResult]) -> list[tuple]:
    return [(r.query, h.rank, h.item_id, h.distance, h.span) for r in results for h in r.hits]


@pytest.mark.parametrize("mode,extra", [("topk", {"k": 5}), ("threshold", {"threshold": 0.45})])
def test_api_search_equals_the_search_app_path(setup, mode, extra):
    files = setup["files"]
    cipher = build_cipher("aes_gcm", str(setup["key"]))
    with Library.open(setup["lib"], key=setup["key"], checkpoint=setup["ckpt"]) as lib:
        got = lib.search(files, mode=mode, **extra)
    with SpeechLibrary.open(setup["lib"], cipher) as store:
        want = search_audio(store, Hasher.from_checkpoint(setup["ckpt"]), files, mode=mode, **extra)
    assert _rows(got) == [(r["query"], r["rank"], r["item_id"], r["ber"], r["span"]) for r in want]
    assert len(want) >= N_FILES
    for i, r in enumerate(got):  # each file finds itself at distance 0 (random weights: maybe tied with others)
        assert f"item{i}" in [h.item_id for h in r if h.distance == 0.0] and r.mode == mode


def test_api_library_equals_an_index_app_library(setup, tmp_path):
    """index.py's path (open_or_create + index_items over manifest items) builds the same library."""
    files = setup["files"]
    cipher = build_cipher("aes_gcm", str(setup["key"]))
    hasher = Hasher.from_checkpoint(setup["ckpt"])
    items = [Item(id=f"item{i}", path=f, speaker=f"s{i % 2}", label=i % 3, text=f"t{i}") for i, f in enumerate(files)]
    store = open_or_create(tmp_path / "app_lib", hasher, cipher, setup["ckpt"], {"kind": "BFlat", "params": {}})
    index_items(store, hasher, items, cipher, progress=False)
    store.close()
    with Library.open(setup["lib"], key=setup["key"], checkpoint=setup["ckpt"]) as a, \
            Library.open(tmp_path / "app_lib", key=setup["key"], checkpoint=setup["ckpt"]) as b:
        assert _rows(a.search(files, k=N_FILES)) == _rows(b.search(files, k=N_FILES))
        assert a.metadata("item3") == b.metadata("item3")
        for i in range(N_FILES):
            ra, rb = a.store.item(f"item{i}"), b.store.item(f"item{i}")
            assert ra["oid"] == rb["oid"]  # same keyed opaque id


def test_search_by_codes_keyless_equals_search_codes(setup):
    hasher = Hasher.from_checkpoint(setup["ckpt"])
    codes = hasher.codes_from_files(setup["files"])
    with Library.open(setup["lib"]) as server:  # no key: opaque ids, no metadata
        got = server.search(codes=codes, k=3)
        one = server.search(codes=codes[2], k=3)
        want = search_codes(server.store, codes, k=3)
        assert [[(h.item_id, h.rank, h.distance) for h in r] for r in got] == \
               [[(h["item_id"], h["rank"], h["ber"]) for h in hits] for hits in want]
        assert one.hits == got[2].hits and one.query == "codes0"
        assert all(re.fullmatch(r"[0-9a-f]{32}", h.item_id) and h.metadata is None for r in got for h in r)
        with pytest.raises(LibraryError, match="checkpoint"):
            server.search(setup["files"][0])
        with pytest.raises(LibraryError, match="key"):
            server.decrypt(got[0].hits[0].item_id)
        with pytest.raises(LibraryError, match="key"):
            server.fsck(deep=True)
        with pytest.raises(LibraryError, match="key"):
            server.add(setup["files"][:1])


def test_hasher_codes_of_lists_batches_and_files(setup):
    hasher = Hasher.from_checkpoint(setup["ckpt"], batch_size=3)
    waves = [load_audio(f, SR) for f in setup["files"]]
    from_list = hasher.codes(waves)
    assert from_list.dtype == bool and from_list.shape == (N_FILES, 128)
    padded = np.zeros((N_FILES, max(map(len, waves))), np.float32)
    for i, w in enumerate(waves):
        padded[i, : len(w)] = w
    assert np.array_equal(hasher.codes(padded, lengths=[len(w) for w in waves]), from_list)
    assert np.array_equal(hasher.codes_from_files(setup["files"]), from_list)
    assert not np.array_equal(hasher.codes(padded), from_list)  # without lengths the padding is audio
    with pytest.raises(ValueError, match="lengths"):
        hasher.codes(padded, lengths=[1] * (N_FILES - 1))
    with pytest.raises(ValueError, match="list"):
        hasher.codes(waves[0])


# ------------------------------------------------------------------------------ decrypt / fsck / errors
def test_decrypt_is_bit_exact_with_metadata(setup):
    with Library.open(setup["lib"], key=setup["key"]) as lib:
        assert len(lib) == N_FILES and "item1" in lib
        for i, f in enumerate(setup["files"]):
            item = lib.decrypt(f"item{i}")
            assert item.pcm.dtype == np.int16 and np.array_equal(item.pcm, to_pcm16(load_audio(f, SR)))
            assert np.array_equal(item.audio, item.pcm.astype(np.float32) / 32768)
            assert item.sample_rate == SR
            assert {k: item.metadata[k] for k in ("source", "speaker", "label", "text")} == \
                   {"source": f, "speaker": f"s{i % 2}", "label": i % 3, "text": f"t{i}"}
        with pytest.raises(KeyError, match="no item"):
            lib.decrypt("absent")


def test_fsck_reports_ok_then_a_corrupt_blob(setup, tmp_path):
    import shutil

    lib_dir = tmp_path / "copy"
    shutil.copytree(setup["lib"], lib_dir)
    with Library.open(lib_dir, key=setup["key"]) as lib:
        rep = lib.fsck(deep=True)
        assert rep.ok and rep.items == N_FILES and rep.deep and not rep.problems and not rep.unrecoverable
        blob = lib_dir / lib.store.item("item4")["blob_path"]
        blob.write_bytes(b"\0" + blob.read_bytes()[1:])
        bad = lib.fsck()
        assert not bad.ok and bad.problems["corrupt"] == ("item4",) and bad.unrecoverable == ("item4",)


def test_errors_name_the_problem(setup, tmp_path):
    with Library.open(setup["lib"], key=setup["key"], checkpoint=setup["ckpt"]) as lib:
        assert lib.search_modes == ("topk", "threshold")
        for mode in ("two_stage", "keyword"):
            with pytest.raises(ConfigError, match=f"mode: {mode} is not a search mode of a speechret library"):
                lib.search(setup["files"][0], mode=mode)
        with pytest.raises(ConfigError, match="k: must be a positive integer"):
            lib.search(setup["files"][0], k=0)
        with pytest.raises(ConfigError, match="exactly one"):
            lib.search()
        with pytest.raises(ConfigError, match=r"metadata key\(s\) \['colour'\]"):
            lib.add([(setup["files"][0], {"colour": "red"})])
        again = lib.add([(f, {"id": f"item{i}"}) for i, f in enumerate(setup["files"])])
        assert again.added == 0 and again.skipped_existing == N_FILES and len(lib) == N_FILES
    with pytest.raises(LibraryError, match="already holds"):
        Library.create(setup["lib"], checkpoint=setup["ckpt"], key=setup["key"])
    with pytest.raises(WrongKeyError):
        Library.open(setup["lib"], key=generate_key_file(tmp_path / "other.key"))
    other = random_checkpoint("speechret_hash", tmp_path, "model.net.channels=[8,16,32,32]", "seed=1",
                              "model.hash_bits=64")
    with pytest.raises(ModelMismatchError):
        Library.open(setup["lib"], checkpoint=other)
    with pytest.raises(ConfigError, match="index"):
        Library.create(tmp_path / "x", checkpoint=setup["ckpt"], key=setup["key"], index="nosuch")


def test_add_a_manifest_and_two_stage_search(setup, tmp_path):
    """Paper B (random cnn_hash): a manifest added through the API, two-stage search (both stage-2
    forms) equal to the search app's path."""
    ckpt = random_checkpoint("crnn_hash", tmp_path)
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "id", "speaker", "label"])
        for i, p in enumerate(setup["files"]):
            w.writerow([p, f"m{i}", f"s{i % 2}", i % 3])
    key = tmp_path / "b.key"
    with Library.create(tmp_path / "b", checkpoint=ckpt, key=key, create_key=True, index="flat") as lib:
        assert lib.add(manifest).added == N_FILES and lib.method == "paper_b"
        assert "two_stage" in lib.search_modes
        for extra in ({"k": 3}, {"stage2": "threshold", "threshold": 0.4}):
            got = lib.search(setup["files"], mode="two_stage", **extra)
            want = search_audio(lib.store, Hasher.from_checkpoint(ckpt), setup["files"], mode="two_stage", **extra)
            assert _rows(got) == [(r["query"], r["rank"], r["item_id"], r["ber"], r["span"]) for r in want]
            for i, r in enumerate(got):
                assert f"m{i}" in [h.item_id for h in r if h.distance == 0.0]


def test_keyword_search_has_spans_equal_to_the_app_path(setup, tmp_path):
    """Paper C (random BiLSTM-CTC): keyword hits carry spans, as search_audio gives them."""
    ckpt = random_checkpoint("bilstm_ctc_baseline", tmp_path, "model.net.hidden=16", "model.net.layers=1")
    with Library.create(tmp_path / "c", checkpoint=ckpt, key=setup["key"]) as lib:
        lib.add(setup["files"])
        assert set(lib.search_modes) >= {"keyword", "full_speech"}
        got = lib.search(setup["files"][:4], mode="keyword", gamma=0.3, k=0)
        want = search_audio(lib.store, Hasher.from_checkpoint(ckpt), setup["files"][:4], mode="keyword", gamma=0.3,
                            k=0)
        assert _rows(got) == [(r["query"], r["rank"], r["item_id"], r["ber"], tuple(r["span"])) for r in want]
        spans = [h.span for r in got for h in r]
        codes = Hasher.from_checkpoint(ckpt).codes_from_files(setup["files"][:2])
        assert lib.search(codes=codes[1], mode="keyword", gamma=0.3, k=0).hits == got[1].hits  # one (S, 27) query
        assert spans and all(isinstance(s, tuple) and 0 <= s[0] < s[1] for s in spans)
        with pytest.raises(ConfigError, match="mode: topk"):
            lib.search(setup["files"][0], mode="topk")


def test_records_are_frozen():
    hit = SearchHit("a", 1, 0.1)
    with pytest.raises(AttributeError):
        hit.rank = 2  # type: ignore[misc]
    res = SearchResult("q", (hit,), "topk")
    assert res.ids == ["a"] and len(res) == 1 and res[0] is hit and list(res) == [hit]
