"""Paper C §4.4 step 4 as an option (``model.hash_options.binarize``): eq. (11)'s median, the
paper's default, or speechret's one-hot of each segment's class (``argmax``).  The option reaches
the codes through the one hash-method object (training-time mAP, indexing, search, evaluation),
a library's manifest records it, and an option a method does not take is refused by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from speechret.errors import ConfigError
from speechret.hashing import binarize_argmax, binarize_median, get_hash_method, hash_paper_c, segments_paper_c
from speechret.hashing.method import hash_method_class
from speechret.hashing.sliding import decision_distances
from speechret.models.components import ModelOutput


def _utterance(classes: list[int], seed: int, frames_per_class: int = 3) -> torch.Tensor:
    """Per-frame scores whose argmax runs through ``classes``; every other score random."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for c in classes:
        for _ in range(frames_per_class):
            f = torch.rand(27, generator=g)
            f[c] = 2.0 + torch.rand(1, generator=g).item()
            rows.append(f)
    return torch.stack(rows)


def test_argmax_codes_are_the_one_hot_of_each_segment_class():
    y = _utterance([3, 3, 26, 5, 12], seed=0)  # 26 = "other": dropped, and splits the 3-runs
    seg = segments_paper_c(y)
    codes = hash_paper_c(y, binarize="argmax")
    assert seg.labels.tolist() == [3, 5, 12]
    assert codes.shape == hash_paper_c(y).shape == (3, 27)  # the same segments as eq. (11)'s codes
    assert codes.sum(1).tolist() == [1, 1, 1]
    assert codes.float().argmax(1).tolist() == seg.labels.tolist()
    assert torch.equal(codes, binarize_argmax(seg.scores))
    assert torch.equal(hash_paper_c(y), binarize_median(seg.scores))  # the default stays the paper's
    assert binarize_argmax(torch.tensor([[1.0, 3.0, 3.0]])).tolist() == [[False, True, False]]  # first of ties
    with pytest.raises(ConfigError, match=r"binarize must be one of \['argmax', 'median'\].*'top3'"):
        hash_paper_c(y, binarize="top3")


def test_argmax_codes_ignore_the_order_of_unlikely_classes():
    """The property the option is for: two voices saying the same classes, with the unlikely
    classes in another order, are at distance 0 with one-hot codes and apart with eq. (11)'s."""
    a, b = _utterance([4, 9, 17], seed=1), _utterance([4, 9, 17], seed=2)
    other = _utterance([4, 9, 18], seed=3)
    for binarize, same_is_zero in (("argmax", True), ("median", False)):
        codes = [hash_paper_c(u, binarize=binarize).numpy() for u in (a, b, other)]
        d = decision_distances(codes[:1], codes, "query_in_item")[0]
        assert d[0] == 0.0
        assert bool(d[1] == 0.0) is same_is_zero, (binarize, d)
        if binarize == "argmax":
            assert d[2] == pytest.approx(2 / 27 / 3)  # one segment of three differs, by 2 of 27 bits


def test_the_option_reaches_the_method_and_a_library_manifest():
    y = torch.stack([_utterance([1, 2], seed=4), _utterance([2, 1], seed=5)])
    out = ModelOutput(logits=torch.cat([y, torch.zeros(2, 6, 1)], -1), hash_features=y,
                      lengths=torch.tensor([6, 6]))
    paper, onehot = get_hash_method("paper_c"), get_hash_method("paper_c", binarize="argmax")
    assert paper.binarize == "median" and onehot.binarize == "argmax"
    assert [c.sum(1).tolist() for c in onehot.codes(out)] == [[1, 1], [1, 1]]
    assert all(c.sum(1).tolist() == [13, 13] for c in paper.codes(out))  # eq. (11): 13 of 27 above y_(14)
    fields = onehot.manifest_fields(onehot.codes(out))
    assert fields == {"code_bits": 27, "binarize": "argmax"}
    assert get_hash_method("paper_c", **fields).binarize == "argmax"
    assert get_hash_method("paper_c", code_bits=27).binarize == "median"  # a manifest from before the option
    assert paper.check_manifest({"code_bits": 27})["binarize"] == "median"
    with pytest.raises(ConfigError, match="manifest binarize must be one of"):
        paper.check_manifest({"code_bits": 27, "binarize": "top3"})
    with pytest.raises(ConfigError, match="paper_c binarize must be one of"):
        get_hash_method("paper_c", binarize="mean")


def test_modules_take_hash_options_and_refuse_foreign_ones():
    from speechret.models.hash_modules import ClassificationHashModule, CTCHashModule

    class Frames(nn.Module):
        blank_index = 27

        def forward(self, x, lengths=None):
            b, t = x.shape[:2]
            return ModelOutput(torch.zeros(b, t, 28), torch.zeros(b, t, 27), lengths)

    m = CTCHashModule(Frames(), hash_method="paper_c", hash_options={"binarize": "argmax"})
    assert m.hashing.binarize == "argmax" and m.hparams.hash_options == {"binarize": "argmax"}
    assert CTCHashModule(Frames(), hash_method="paper_c").hashing.binarize == "median"
    with pytest.raises(ConfigError, match=r"model.hash_options: hash method 'paper_c' takes binarize, not median"):
        CTCHashModule(Frames(), hash_method="paper_c", hash_options={"median": True})
    with pytest.raises(ConfigError, match=r"hash_options: hash method 'speechret' takes no options, not binarize"):
        ClassificationHashModule(nn.Linear(2, 2), num_classes=2, hash_method="speechret",
                                 hash_options={"binarize": "argmax"})
    assert hash_method_class("paper_c").options == ("binarize",)


def test_evaluate_hash_options_override_a_checkpoint(trained_paper_c, tmp_path):
    """``evaluate.hash_options`` re-codes a checkpoint without retraining; the report says so in
    its first lines, and the argmax codes of the trained model are the one-hot of its segments."""
    from omegaconf import OmegaConf

    from speechret.evaluate.runner import Context
    from speechret.hashing.hasher import Hasher

    ckpt = trained_paper_c["ckpt"]
    paper = Hasher.from_checkpoint(ckpt)
    onehot = Context(OmegaConf.create({"evaluate": {"hash_options": {"binarize": "argmax"}}}), tmp_path).hasher(ckpt)
    assert paper.hashing.binarize == "median" and onehot.hashing.binarize == "argmax"
    files = sorted(trained_paper_c["root"].rglob("*.wav"))[:6]
    assert len(files) == 6
    medians, onehots = paper.codes_from_files(files), onehot.codes_from_files(files)
    assert sum(len(c) for c in onehots) > 0  # the trained model finds segments
    for a, b in zip(medians, onehots):  # the same segments, each coded by its class alone
        assert a.shape == b.shape and (b.sum(1) == 1).all() and (a.sum(1) == 13).all()
    with pytest.raises(ConfigError, match="hash_options: hash method 'paper_c' takes binarize, not top_k"):
        Hasher.from_checkpoint(ckpt, hash_options={"top_k": 1})
    with pytest.raises(ConfigError, match="evaluate.hash_options: a mapping"):
        Context(OmegaConf.create({"evaluate": {"hash_options": "argmax"}}), tmp_path).hasher(ckpt)


def test_a_library_of_one_hot_codes_records_them_and_finds_its_items(trained_paper_c, tmp_path):
    """A checkpoint trained with ``model.hash_options.binarize=argmax`` (here: the fixture's, its
    stored run config changed as such a run stores it): the library built with it records the
    binarisation in its manifest, stores one-hot segments, and a spoken item finds itself at
    distance 0 by keyword search; the same library reopened without a key reads the option back."""
    import json

    from speechret.api import Library

    ckpt = torch.load(trained_paper_c["ckpt"], map_location="cpu", weights_only=False)
    ckpt["speechret"]["model"]["hash_options"] = {"binarize": "argmax"}
    onehot_ckpt = tmp_path / "onehot.ckpt"
    torch.save(ckpt, onehot_ckpt)
    files = sorted(trained_paper_c["root"].rglob("*.wav"))[:5]
    with Library.create(tmp_path / "lib", checkpoint=onehot_ckpt, key=tmp_path / "key", create_key=True) as lib:
        lib.add(files)
        assert lib.hasher.hashing.binarize == "argmax"
        query = lib.hasher.codes_from_files(files[:1])
        assert (query[0].sum(1) == 1).all() and len(query[0])
        hits = lib.search(files[0], mode="keyword", k=3, gamma=0.0)
        assert hits.hits and hits.hits[0].item_id == files[0].stem and hits.hits[0].distance == 0.0
    manifest = json.loads((tmp_path / "lib" / "manifest.json").read_text())
    assert manifest["binarize"] == "argmax"
    with Library.open(tmp_path / "lib") as server:  # keyless, as a server opens it
        assert server.store.hashing.binarize == "argmax"


def test_a_ctc_run_with_hash_options_tests_its_best_checkpoint(tiny_corpus, tmp_path, train_composed):
    """Hydra gives ``model.hash_options`` as an OmegaConf node; the checkpoint must still hold plain
    hyper-parameters, or Lightning's reload of the best checkpoint for ``test`` (``torch.load``
    with ``weights_only=True``) refuses it after the whole training."""
    summary = train_composed([
        "experiment=bilstm_ctc_baseline", "data=manifest", f"data.root={tiny_corpus / 'manifest.csv'}",
        "data.batch_size=4", "data.val_fraction=0.25", "data.test_fraction=0.25", "data.num_workers=0",
        "model.net.hidden=16", "model.net.layers=1", "model.hash_options.binarize=argmax", "trainer.max_epochs=1",
        "logger=none", "callbacks.rich_progress_bar=null", "callbacks.early_stopping=null", "test=true",
        "model.frame_check=warn", f"paths.output_dir={tmp_path}"])
    assert summary["best_checkpoint"] and "test/per" in summary["metrics"]
    hp = torch.load(summary["best_checkpoint"], map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hp["hash_options"] == {"binarize": "argmax"} and type(hp["hash_options"]) is dict
