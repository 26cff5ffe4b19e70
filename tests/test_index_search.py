"""index.py / search.py end to end: a checkpoint indexes a folder with bad files into an encrypted
library (bad files reported, the rest indexed, re-runs idempotent), search finds the query's own
recording first (by corpus id with the key, by opaque id without it), and decrypted hits are the
original samples. Search needs the library's checkpoint (``ckpt_path=``; another one is refused unless
``force=true``)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from speechret.audio import load_audio
from speechret.apps.index import run_index
from speechret.crypto import build_cipher
from speechret.errors import ConfigError, SpeechretError
from speechret.library.indexer import to_pcm16
from speechret.library.store import ModelMismatchError, SpeechLibrary
from speechret.apps.search import run_search
from speechret.apps.train import train

REPO = Path(__file__).resolve().parents[1]


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose(name, overrides=overrides)


@pytest.fixture(scope="module")
def checkpoint(tiny_corpus, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("train")
    cfg = compose_cfg("train", ["experiment=cnn", "debug=limit", "trainer.max_epochs=1", "logger=csv", "test=false",
                                "data=manifest", f"data.root={tiny_corpus / 'manifest.csv'}", "data.batch_size=4",
                                "data.val_fraction=0.25", "data.test_fraction=0.25", f"paths.output_dir={out}"])
    return train(cfg)["best_checkpoint"]


@pytest.fixture()
def corpus_with_bad_files(tiny_corpus, tmp_path) -> Path:
    rows = list(csv.DictReader((tiny_corpus / "manifest.csv").open()))[:10]
    for r in rows:
        r["path"] = str((tiny_corpus / r["path"]).resolve())
    bad = {"empty": b"", "corrupt": b"RIFF\x10\x00\x00\x00WAVEgarbage-not-audio", "wrongformat": b"%PDF-1.4 not audio"}
    for name, data in bad.items():
        p = tmp_path / f"{name}.wav"
        p.write_bytes(data)
        rows.append({**rows[0], "id": f"bad_{name}", "path": str(p)})
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    return manifest


def test_index_reports_bad_files_indexes_the_rest_and_search_decrypts(checkpoint, corpus_with_bad_files, tmp_path):
    lib_dir, key = tmp_path / "lib", tmp_path / "lib.key"
    common = [f"ckpt_path={checkpoint}", f"library={lib_dir}", "data=manifest", f"data.root={corpus_with_bad_files}",
              f"cipher.key_material.key_file={key}", "progress=false", "batch_size=4"]
    report = run_index(compose_cfg("index", [*common, "create_key=true"]))
    assert report.added == 10
    failed = {Path(p).name: why for p, why in report.failed}
    assert set(failed) == {"empty.wav", "corrupt.wav", "wrongformat.wav"}
    assert all(name in why for name, why in failed.items())  # the message names the file
    again = run_index(compose_cfg("index", common))
    assert again.added == 0 and again.skipped_existing == 10
    lib = SpeechLibrary.open(lib_dir)
    assert len(lib) == 10

    query = next(r for r in csv.DictReader(corpus_with_bad_files.open()) if not r["id"].startswith("bad_"))
    out = tmp_path / "hits"
    search = [f"library={lib_dir}", f"ckpt_path={checkpoint}", f"queries={query['path']}", "k=3", "format=json"]
    rows = run_search(compose_cfg("search", [*search, f"cipher.key_material.key_file={key}", f"decrypt={out}"]))
    assert rows[0]["item_id"] == query["id"] and rows[0]["ber"] == 0.0  # with the key: corpus ids
    assert [r["rank"] for r in rows] == [1, 2, 3]
    decrypted = load_audio(out / f"{query['id']}.wav", 16000)
    np.testing.assert_array_equal(to_pcm16(decrypted), to_pcm16(load_audio(query["path"], 16000)))

    rebuilt = run_index(compose_cfg("index", [*common, "command=rebuild"]))
    assert rebuilt["rows"] == 10
    again_rows = run_search(compose_cfg("search", [*search, f"cipher.key_material.key_file={key}"]))
    assert [(r["item_id"], r["ber"]) for r in again_rows] == [(r["item_id"], r["ber"]) for r in rows]
    # without the key (a server): the same hits, named by their opaque on-disk ids
    keyless = run_search(compose_cfg("search", [*search, "use_key=false"]))
    with SpeechLibrary.open(lib_dir, build_cipher("aes_gcm", key)) as keyed:
        oids = [keyed.item(r["item_id"])["oid"] for r in rows]
    assert [(r["item_id"], r["ber"]) for r in keyless] == [(o, r["ber"]) for o, r in zip(oids, rows)]
    assert query["id"] not in {r["item_id"] for r in keyless}


def test_wrong_key_is_refused_before_indexing(checkpoint, corpus_with_bad_files, tmp_path):
    lib_dir = tmp_path / "lib"
    common = [f"ckpt_path={checkpoint}", f"library={lib_dir}", "data=manifest", f"data.root={corpus_with_bad_files}",
              "progress=false"]
    run_index(compose_cfg("index", [*common, f"cipher.key_material.key_file={tmp_path / 'a.key'}", "create_key=true"]))
    from speechret.crypto import WrongKeyError

    with pytest.raises(WrongKeyError):
        run_index(compose_cfg("index", [*common, f"cipher.key_material.key_file={tmp_path / 'b.key'}", "create_key=true"]))


def test_search_refuses_a_different_checkpoint(checkpoint, corpus_with_bad_files, tmp_path):
    lib_dir, key = tmp_path / "lib", tmp_path / "k.key"
    run_index(compose_cfg("index", [f"ckpt_path={checkpoint}", f"library={lib_dir}", "data=manifest",
                                    f"data.root={corpus_with_bad_files}", f"cipher.key_material.key_file={key}",
                                    "create_key=true", "progress=false"]))
    other = tmp_path / "other.ckpt"
    shutil.copy(checkpoint, other)
    with other.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelMismatchError, match="sha256"):
        run_search(compose_cfg("search", [f"library={lib_dir}", f"ckpt_path={other}", "queries=x.wav"]))
    manifest = json.loads((lib_dir / "manifest.json").read_text())
    assert manifest["checkpoint_sha256"] and manifest["checkpoint_name"] == Path(checkpoint).name
    assert "checkpoint" not in manifest and str(Path(checkpoint).parent) not in json.dumps(manifest)  # no path
    with pytest.raises(ConfigError, match="ckpt_path: .* keeps no checkpoint path"):
        run_search(compose_cfg("search", [f"library={lib_dir}", "queries=x.wav"]))
    # force=true gets past the model check (then x.wav, missing, is the only problem)
    with pytest.raises(SpeechretError, match="none of the 1 query file"):
        run_search(compose_cfg("search", [f"library={lib_dir}", f"ckpt_path={other}", "force=true", "queries=x.wav"]))


def test_threshold_mode_returns_only_hits_below_the_threshold(checkpoint, corpus_with_bad_files, tmp_path):
    lib_dir, key = tmp_path / "lib", tmp_path / "k.key"
    run_index(compose_cfg("index", [f"ckpt_path={checkpoint}", f"library={lib_dir}", "data=manifest",
                                    f"data.root={corpus_with_bad_files}", f"cipher.key_material.key_file={key}",
                                    "create_key=true", "progress=false"]))
    query = next(r for r in csv.DictReader(corpus_with_bad_files.open()) if not r["id"].startswith("bad_"))
    topk = run_search(compose_cfg("search", [f"library={lib_dir}", f"ckpt_path={checkpoint}", f"queries={query['path']}",
                                             "k=10", "format=json"]))
    t = topk[3]["ber"] + 1e-9
    thr = run_search(compose_cfg("search", [f"library={lib_dir}", f"ckpt_path={checkpoint}", f"queries={query['path']}",
                                            "mode=threshold", f"threshold={t}", "format=json"]))
    assert all(r["ber"] < t for r in thr)
    assert {r["item_id"] for r in thr} == {r["item_id"] for r in topk if r["ber"] < t}


def test_paper_c_library_keyword_search_finds_the_spoken_sentence(tiny_sentences, tmp_path):
    out = tmp_path / "train"
    cfg = compose_cfg("train", ["experiment=bilstm_ctc_baseline", "debug=limit", "trainer.max_epochs=1", "logger=csv",
                                "test=false", "data=manifest", f"data.root={tiny_sentences / 'manifest.csv'}",
                                "data.batch_size=4", "data.val_fraction=0.34", "data.test_fraction=0.0",
                                # near-initial weights: an (almost) untrained CTC net still spreads its
                                # per-frame argmax over classes, so items have segments; a briefly
                                # trained one outputs "other"/blank everywhere (no segment to match)
                                "model.optimizer.lr=1e-12", f"paths.output_dir={out}"])
    ckpt = train(cfg)["best_checkpoint"]
    lib_dir, key = tmp_path / "lib", tmp_path / "k.key"
    run_index(compose_cfg("index", [f"ckpt_path={ckpt}", f"library={lib_dir}", "data=manifest",
                                    f"data.root={tiny_sentences / 'manifest.csv'}", f"cipher.key_material.key_file={key}",
                                    "create_key=true", "progress=false"]))
    lib = SpeechLibrary.open(lib_dir, build_cipher("aes_gcm", key))  # the key holder sees ids and sources
    assert lib.manifest["hash_method"] == "paper_c"
    _, ids, codes = lib.load_codes()
    k = next(i for i, c in enumerate(codes) if len(c) > 0)  # an item with at least one segment
    item = lib.item(ids[k])
    search = [f"library={lib_dir}", f"ckpt_path={ckpt}", f"queries={item['source']}", "gamma=0.0", "format=json", "k=0",
              f"cipher.key_material.key_file={key}"]
    rows = run_search(compose_cfg("search", [*search, "mode=full_speech"]))
    assert rows and rows[0]["item_id"] == ids[k] and rows[0]["ber"] == 0.0
    assert tuple(rows[0]["span"]) == (0, len(codes[k]))
    kw = run_search(compose_cfg("search", [*search, "mode=keyword"]))
    assert any(r["item_id"] == ids[k] and tuple(r["span"]) == (0, len(codes[k])) for r in kw)


def test_search_uses_the_key_when_at_hand_and_keyed_codes_need_it(checkpoint, corpus_with_bad_files, tmp_path):
    """``use_key=auto``: a key file at hand is used (corpus ids), a wrong one is an error (never a
    silent keyless fallback); a keyed-codes library cannot be searched without its key."""
    from speechret.crypto import WrongKeyError, generate_key_file

    lib_dir, key = tmp_path / "keyed", tmp_path / "keyed.key"
    run_index(compose_cfg("index", [f"ckpt_path={checkpoint}", f"library={lib_dir}", "data=manifest",
                                    f"data.root={corpus_with_bad_files}", f"cipher.key_material.key_file={key}",
                                    "create_key=true", "keyed_codes=true", "progress=false"]))
    query = next(r for r in csv.DictReader(corpus_with_bad_files.open()) if not r["id"].startswith("bad_"))
    search = [f"library={lib_dir}", f"ckpt_path={checkpoint}", f"queries={query['path']}", "k=3", "format=json"]
    rows = run_search(compose_cfg("search", [*search, f"cipher.key_material.key_file={key}"]))
    assert rows[0]["item_id"] == query["id"] and rows[0]["ber"] == 0.0  # keyed codes: distances unchanged
    with pytest.raises(ConfigError, match="use_key: false, but library .* needs its key: its codes are keyed"):
        run_search(compose_cfg("search", [*search, "use_key=false"]))
    with pytest.raises(ConfigError, match="needs its key .* none is at hand"):
        run_search(compose_cfg("search", [*search, f"cipher.key_material.key_file={tmp_path / 'absent.key'}"]))
    wrong = generate_key_file(tmp_path / "wrong.key")
    with pytest.raises(WrongKeyError, match="wrong key"):
        run_search(compose_cfg("search", [*search, f"cipher.key_material.key_file={wrong}"]))
    assert len(SpeechLibrary.open(lib_dir)) == 10  # unchanged
