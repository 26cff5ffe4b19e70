"""Copies of one recording listed as several items (speechret.data.duplicates): found by their
bytes, dropped before the split (data.duplicates) and out of every evaluation set (drop_copies)."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from speechret.data.corpora import load_corpus
from speechret.data.datamodule import SpeechDataModule
from speechret.data.duplicates import copy_groups, file_digest, resolve_duplicates, unique_items
from speechret.data.manifest import Item, Manifest
from speechret.errors import ConfigError
from speechret.evaluate.eval_sets import TrainedOn, datamodule, drop_copies


def _item(path: str, speaker: str = "s0", label: int = 0, rep: int = 1) -> Item:
    return Item(id=Path(path).stem, path=path, speaker=speaker, label=label, text="", pinyin="", language="zh",
                duration=1.0, split="", repetition=rep)


@pytest.fixture()
def copied_corpus(tiny_corpus, tmp_path) -> tuple[Path, int]:
    """A manifest of the tiny corpus plus, for every (speaker, word), a copy of repetition 1's file
    (another name, other folder) listed as repetition 3. Returns (manifest path, original count)."""
    items = list(load_corpus("synthetic", tiny_corpus))
    extra = []
    for it in items:
        if it.repetition == 1:
            dst = tmp_path / "copies" / f"{it.id}_again{Path(it.path).suffix}"
            dst.parent.mkdir(exist_ok=True)
            shutil.copyfile(it.path, dst)
            extra.append(dataclasses.replace(it, id=f"{it.id}_again", path=str(dst), repetition=3))
    return Manifest(items + extra).save(tmp_path / "manifest.csv"), len(items)


def _dm(path, **kw) -> SpeechDataModule:
    dm = SpeechDataModule(corpus="manifest", root=path, split="repetition", val_repetitions=[2],
                          test_repetitions=[3], batch_size=4, **kw)
    dm.setup()
    return dm


def _split_digests(dm, split):
    return {file_digest(dm.items[i].path) for i in dm.split_indices[split]}


def test_resolve_keeps_the_first_of_each_group_and_drops_a_mislabelled_recording_whole(caplog):
    items = [_item("a/1.wav"), _item("a/2.wav"), _item("b/3.wav", "s1"), _item("a/4.wav"), _item("c/5.wav", label=1),
             _item("c/6.wav", label=2)]
    digests = ["x", "y", "x", "x", "z", "z"]
    assert copy_groups(digests) == [[0, 2, 3], [4, 5]]
    with caplog.at_level(logging.WARNING):
        assert resolve_duplicates(items, digests, "drop") == [0, 1]
    assert "4 of 6 items" in caplog.text and "different labels" in caplog.text and "c/5.wav (label 1)" in caplog.text
    assert resolve_duplicates(items, digests, "keep") == list(range(6))
    assert resolve_duplicates(items[:2], ["x", "y"], "drop") == [0, 1]
    with pytest.raises(ConfigError, match=r"3 items are copies.*a/1\.wav = b/3\.wav = a/4\.wav"):
        resolve_duplicates(items, digests, "error")
    with pytest.raises(ConfigError, match="data.duplicates: unknown policy 'dedupe'"):
        resolve_duplicates(items, digests, "dedupe")


def test_file_digest_reads_bytes_and_names_a_missing_file(tmp_path):
    a, b, c = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    a.write_bytes(b"\x00\x01" * 70000)
    b.write_bytes(b"\x00\x01" * 70000)
    c.write_bytes(b"\x00\x01" * 69999 + b"\x00\x02")  # differs in the last byte, past the first block
    assert file_digest(a) == file_digest(b) != file_digest(c)
    with pytest.raises(ConfigError, match=r"missing\.wav: cannot read"):
        file_digest(tmp_path / "missing.wav")


def test_datamodule_drops_copies_before_the_split_so_none_crosses_it(copied_corpus):
    path, n = copied_corpus
    kept = _dm(path, duplicates="keep")
    assert len(kept.items) == n + n // 2
    # the leak the option removes: every test item of a repetition split is a training file again
    assert kept.split_indices["test"] and _split_digests(kept, "test") <= _split_digests(kept, "train")
    dropped = _dm(path)  # the default
    assert dropped.duplicates == "drop" and len(dropped.items) == n
    assert not any("_again" in str(it.path) for it in dropped.items)
    assert len({file_digest(it.path) for it in dropped.items}) == n
    assert not _split_digests(dropped, "test") & _split_digests(dropped, "train")
    with pytest.raises(ConfigError, match=r"items are copies of another item's file.*_again"):
        _dm(path, duplicates="error")
    with pytest.raises(ConfigError, match="data.duplicates: unknown policy"):
        SpeechDataModule(corpus="manifest", root=path, duplicates="yes")


def test_a_checkpoint_config_without_the_key_is_split_as_it_trained(copied_corpus):
    path, n = copied_corpus
    cfg = {"_target_": "speechret.data.datamodule.SpeechDataModule", "corpus": "manifest", "root": str(path),
           "split": "repetition", "val_repetitions": [2], "test_repetitions": [3]}
    assert len(datamodule(cfg).items) == n + n // 2  # stored before data.duplicates: its run kept the copies
    assert len(datamodule({**cfg, "duplicates": "drop"}).items) == n


def test_drop_copies_leaves_out_copies_of_seen_files_and_repeats_within_the_set(copied_corpus):
    path, n = copied_corpus
    dm = _dm(path, duplicates="keep")
    trained = TrainedOn(frozenset(), frozenset(), 0, dm, "manifest")
    assert trained.digests == _split_digests(dm, "train") | _split_digests(dm, "val")
    test = [dm.items[i] for i in dm.split_indices["test"]]  # copies of training files
    fresh = [it for it in load_corpus("manifest", path) if it.repetition == 2][:3]
    seen_train_only = SimpleNamespace(digests=frozenset(_split_digests(dm, "train")))
    # a training file's copy is left out; a set holding one file twice keeps it once
    items, note = drop_copies(test + fresh + fresh[:2], seen_train_only, "the test set")
    assert items == fresh
    assert f"without {len(test)} items whose file is a copy of one the checkpoint trained" in note
    assert "without 2 copies of another item's file" in note
    assert drop_copies(fresh, seen_train_only, "the test set") == (fresh, "")
    # no checkpoint data (evaluate.set=all): only the repeats go
    items, note = drop_copies(test + test, None, "the all set")
    assert items == test and "copy of one the checkpoint" not in note
    # the benches' lists of corpus items: the same rule
    assert unique_items(fresh + test + fresh) == fresh + test
