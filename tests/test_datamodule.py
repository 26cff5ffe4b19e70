"""SpeechDataModule: selection, splits, CPO copies and augmentation, collate, CTC targets, cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechret.cpo import CPOAugment
from speechret.data.datamodule import (
    SpeechDataModule,
    collate_speech,
    speaker_overlap,
    split_by_repetition,
    split_by_speaker,
)
from speechret.data.manifest import Item
from speechret.data.pronunciation import pinyin_to_labels
from speechret.errors import ConfigError
from speechret.features import LogMel, SVS


def make_dm(root, **kw) -> SpeechDataModule:
    kw.setdefault("corpus", "synthetic")
    kw.setdefault("batch_size", 4)
    return SpeechDataModule(root=root, **kw)


def items(n_speakers=6, n_labels=3, reps=2):
    return [Item(id=f"{s}_{l}_{r}", path=f"/x/{s}_{l}_{r}.wav", speaker=f"s{s}", label=l, text="", pinyin="",
                 language="zh", duration=1.0, split="", repetition=r)
            for s in range(n_speakers) for l in range(n_labels) for r in range(1, reps + 1)]


def test_speaker_split_is_disjoint_covering_and_seeded():
    its = items(10)
    a = split_by_speaker(its, 0.2, 0.2, seed=1)
    b = split_by_speaker(its, 0.2, 0.2, seed=1)
    c = split_by_speaker(its, 0.2, 0.2, seed=2)
    assert a == b and a != c
    spk = {k: {its[i].speaker for i in v} for k, v in a.items()}
    assert len(spk["val"]) == 2 and len(spk["test"]) == 2 and len(spk["train"]) == 6
    assert not (spk["train"] & spk["val"]) and not (spk["train"] & spk["test"]) and not (spk["val"] & spk["test"])
    assert sorted(sum(a.values(), [])) == list(range(len(its)))


def test_speaker_split_refuses_too_few_speakers():
    with pytest.raises(ValueError, match="speakers"):
        split_by_speaker(items(2), 0.4, 0.4, seed=0)


def test_repetition_split():
    its = items(3, 2, reps=4)
    s = split_by_repetition(its, [3], [4])
    assert {its[i].repetition for i in s["train"]} == {1, 2}
    assert {its[i].repetition for i in s["val"]} == {3} and {its[i].repetition for i in s["test"]} == {4}


def test_selection_relabel_and_splits(tiny_corpus):
    dm = make_dm(tiny_corpus, labels=[1, 3], split="speaker", val_fraction=0.25, test_fraction=0.25)
    dm.setup()
    assert dm.num_classes == 2 and dm.label_map == {1: 0, 3: 1}
    assert {it.label for it in dm.items} == {0, 1}
    assert len(dm.items) == 4 * 2 * 2
    assert speaker_overlap(dm) == set()
    assert all(len(dm.split_indices[s]) == 4 for s in ("val", "test"))


def test_language_selection_drops_other_languages(tiny_corpus):
    dm = make_dm(tiny_corpus, languages=["en"])
    with pytest.raises(ValueError, match="no items"):
        dm.setup()


def test_collate_pads_and_keeps_lengths():
    batch = collate_speech([
        {"wave": np.ones(5, np.float32), "label": 1, "targets": [3, 4], "index": 0, "item_index": 0, "cpo": -1, "id": "a"},
        {"wave": np.ones(3, np.float32), "label": 2, "targets": [7], "index": 1, "item_index": 1, "cpo": -1, "id": "b"},
    ])
    assert batch["wave"].shape == (2, 5)
    assert batch["wave_lengths"].tolist() == [5, 3]
    assert batch["wave"][1, 3:].abs().sum() == 0
    assert batch["targets"].tolist() == [[3, 4], [7, -1]] and batch["target_lengths"].tolist() == [2, 1]


def test_batches_have_features_computed_after_transfer(tiny_corpus):
    dm = make_dm(tiny_corpus, features=LogMel())
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert "features" not in batch  # features are made on the device, not in workers
    batch = dm.prepare_batch(batch)
    assert batch["features"].shape == (4, 401, 20)
    assert batch["label"].min() >= 0


def test_ctc_targets_follow_pinyin(tiny_sentences):
    dm = make_dm(tiny_sentences, target="ctc", split="random", val_fraction=0.25, test_fraction=0.0)
    dm.setup()
    ds = dm.datasets["train"]
    for k in range(len(ds)):
        d = ds[k]
        it = dm.items[d["item_index"]]
        assert d["targets"] == pinyin_to_labels(it.pinyin)
        assert len(d["targets"]) >= 4


def test_cpo_copies_expand_training_set_deterministically(tiny_corpus):
    dm = make_dm(tiny_corpus, copies=["gain_+3dB", "white_20dB"], split="repetition",
                 val_repetitions=[], test_repetitions=[2])
    dm.setup()
    train = dm.datasets["train"]
    n_items = len(dm.split_indices["train"])
    assert len(train) == 3 * n_items
    orig, gain, noisy = train[0], train[1], train[2]
    assert (orig["cpo"], gain["cpo"], noisy["cpo"]) == (-1, 0, 1)
    ratio = np.mean(gain["wave"] ** 2) / np.mean(orig["wave"] ** 2)
    assert ratio == pytest.approx(10 ** 0.3, rel=1e-3)
    np.testing.assert_array_equal(train[2]["wave"], noisy["wave"])  # same copy every epoch
    assert len(dm.datasets["test"]) == len(dm.split_indices["test"])  # no copies outside train


def test_augmentation_applies_to_training_batches_only(tiny_corpus):
    aug = CPOAugment(ops=["gain_+3dB"], p=1.0, seed=0)
    dm = make_dm(tiny_corpus, augment=aug, features=LogMel())
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    clean = batch["wave"].clone()
    out = dm.prepare_batch(dict(batch), augment=True)
    p = out["wave"].pow(2).sum(1) / clean.pow(2).sum(1)
    torch.testing.assert_close(p, torch.full_like(p, 10 ** 0.3), rtol=1e-4, atol=0)
    same = dm.prepare_batch(dict(batch, wave=clean.clone()), augment=False)
    torch.testing.assert_close(same["wave"], clean)


def test_training_cpos_degrade_the_recording_before_the_front_end(tiny_corpus):
    """A CPO models what happens to a recording before speechret hears it, so the trimmer sees
    the degraded clip (as in protocol=cpo_retrieval and the deterministic copies): the batch is
    trim(requant(wave)), not requant(trim(wave))."""
    from speechret.frontend import SilenceTrim

    seen = []

    class Recording(CPOAugment):
        def forward(self, wave, lengths=None):
            seen.append(lengths.clone())
            return super().forward(wave, lengths)

    def requant():  # a fresh, identically seeded generator for each use
        return CPOAugment(ops=["requant_8bit"], p=1.0)

    trim = SilenceTrim(max_gap_ms=200.0, noise_percentile=10.0, remove_dc=True)
    dm = make_dm(tiny_corpus, augment=Recording(ops=["requant_8bit"], p=1.0), frontend=trim)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    raw, raw_len = batch["wave"].clone(), batch["wave_lengths"].clone()
    out = dm.prepare_batch(dict(batch), augment=True)
    assert seen and torch.equal(seen[0], raw_len)  # the CPO saw the untrimmed clips
    want, want_len = trim(requant()(raw, raw_len), raw_len)
    assert torch.equal(out["wave_lengths"], want_len)
    torch.testing.assert_close(out["wave"], want, rtol=0, atol=0)
    other, other_len = trim(raw, raw_len)  # trimming first would code a different crop
    assert not (torch.equal(other_len, want_len)
                and torch.equal(requant()(other, other_len), want))


def test_feature_cache_equals_on_the_fly(tiny_corpus, tmp_path):
    feats = SVS(width=31, height=16)
    plain = make_dm(tiny_corpus, features=feats)
    cached = make_dm(tiny_corpus, features=feats, cache_features=True, cache_dir=tmp_path)
    plain.setup(); cached.setup()
    a = plain.prepare_batch(next(iter(plain.val_dataloader())))
    b = cached.prepare_batch(next(iter(cached.val_dataloader())))
    assert b["feature_lengths"].tolist() == a["feature_lengths"].tolist()
    torch.testing.assert_close(b["features"], a["features"])
    assert list(tmp_path.glob("features-val-*.pt"))
    again = make_dm(tiny_corpus, features=feats, cache_features=True, cache_dir=tmp_path)
    again.setup()  # loads from disk
    c = again.prepare_batch(next(iter(again.val_dataloader())))
    torch.testing.assert_close(c["features"], a["features"])


def test_workers_give_the_same_batches(tiny_corpus):
    a = make_dm(tiny_corpus, num_workers=0, cache_waveforms=False)
    b = make_dm(tiny_corpus, num_workers=2, cache_waveforms=False)
    a.setup(); b.setup()
    ba, bb = next(iter(a.val_dataloader())), next(iter(b.val_dataloader()))
    torch.testing.assert_close(ba["wave"], bb["wave"])
    assert ba["ids"] == bb["ids"]


@pytest.mark.realdata
def test_dspspeech20_through_datamodule_and_every_feature(dspspeech20_root):
    from speechret.data.corpora import load_corpus
    from speechret.features import MFCC, LogMelImage, MFCCSequence

    dm = SpeechDataModule(corpus="dspspeech20", root=dspspeech20_root, batch_size=6, split="speaker")
    dm.setup()
    # 3840 listed; speaker 15307130191's 160 items hold 60 recordings (3 per word), so 100 are copies
    assert len(dm.items) == 3740 and dm.num_classes == 20
    assert sum(it.speaker == "15307130191" for it in dm.items) == 60
    assert len(load_corpus("dspspeech20", dspspeech20_root)) == 3840
    assert len({it.speaker for it in dm.items}) == 24
    assert speaker_overlap(dm) == set()
    batch = next(iter(dm.val_dataloader()))
    for extractor, shape in [(LogMel(), (401, 20)), (MFCC(), (401, 20)), (LogMelImage(), (3, 224, 224)),
                             (SVS(), None), (MFCCSequence(), None)]:
        feats, lengths = extractor(batch["wave"], batch["wave_lengths"])
        assert torch.isfinite(feats).all()
        assert feats.shape[0] == 6 and lengths.shape == (6,)
        if shape is not None:
            assert tuple(feats.shape[1:]) == shape


@pytest.mark.parametrize("kw, key", [({"corpus": "timit"}, "data.corpus"), ({"split": "half"}, "data.split"),
                                     ({"target": "words"}, "data.target")])
def test_bad_config_is_a_config_error_naming_the_key(kw, key):
    from speechret.errors import ConfigError

    with pytest.raises(ConfigError, match="^" + key.replace(".", r"\.") + ":"):
        SpeechDataModule(**kw)


def test_corpus_aliases_are_canonical(tmp_path):
    assert make_dm(tmp_path, corpus="Espeak").corpus == "synthetic"


def test_named_val_and_test_speakers_give_exactly_those_splits():
    """``data.val_speakers`` / ``data.test_speakers`` (the folds of bench/cross_speaker.py)."""
    items = [Item(id=f"{s}-{w}", path=f"{s}/{w}.wav", speaker=s, label=w) for s in "abcdefgh" for w in range(3)]
    out = split_by_speaker(items, 0.25, 0.25, seed=0, val_speakers=["b", "c"], test_speakers=["a"])
    spk = {k: {items[i].speaker for i in v} for k, v in out.items()}
    assert spk["test"] == {"a"} and spk["val"] == {"b", "c"} and spk["train"] == set("defgh")
    part = split_by_speaker(items, 0.25, 0.25, seed=3, test_speakers=["h", "g"])
    pspk = {k: {items[i].speaker for i in v} for k, v in part.items()}
    assert pspk["test"] == {"g", "h"} and len(pspk["val"]) == 2 and not pspk["val"] & pspk["test"]
    with pytest.raises(ConfigError, match="data.test_speakers: speakers \\['z'\\]"):
        split_by_speaker(items, 0.25, 0.25, 0, test_speakers=["z"])
    with pytest.raises(ConfigError, match="share \\['a'\\]"):
        split_by_speaker(items, 0.25, 0.25, 0, val_speakers=["a"], test_speakers=["a"])
