"""The evaluation set and the threshold data of ``evaluate.py`` (speechret.evaluate.runner), without
training: a checkpoint is stood in for by its stored run config, which is all the runner reads to
know what the checkpoint trained and validated on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from speechret.data.datamodule import SpeechDataModule
from speechret.data.synthetic import DEFAULT_WORDS
from speechret.evaluate.protocols import CPORetrieval, CrossSpeaker, EvalData, Keyword
from speechret.evaluate.runner import Context, TrainedOn, check_disjoint

REPO = Path(__file__).resolve().parents[1]


class _Ckpt:
    """What the runner reads of a loaded checkpoint (a Hasher): ``config["data"]``."""

    def __init__(self, data: dict) -> None:
        self.config = {"data": data}


def _ctx(tmp_path: Path, overrides: list[str] = ()) -> Context:
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return Context(compose("evaluate", overrides=list(overrides)), tmp_path)


def _manifest_cfg(corpus: Path, **kw) -> dict:
    return {"_target_": "speechret.data.datamodule.SpeechDataModule", "corpus": "manifest",
            "root": str(corpus / "manifest.csv"), "split": "speaker", "val_fraction": 0.25, "test_fraction": 0.25,
            "seed": 3, **kw}


def _synthetic_cfg(root: Path) -> dict:
    """A 3-speaker synthetic corpus split 1/1/1: one unheard voice, one validation voice."""
    return {"_target_": "speechret.data.datamodule.SpeechDataModule", "corpus": "synthetic", "root": str(root),
            "corpus_kwargs": {"n_speakers": 3, "kind": "words", "repetitions": 1, "seed": 0,
                              "words": [list(w) for w in DEFAULT_WORDS[:3]]},
            "split": "speaker", "val_fraction": 0.34, "test_fraction": 0.34, "seed": 0}


def test_test_set_is_the_datamodules_own_test_split(tiny_corpus, tmp_path):
    cfg = _manifest_cfg(tiny_corpus)
    data = _ctx(tmp_path).eval_data(_Ckpt(cfg), CPORetrieval(cpos=["gain_-3dB"]))
    dm = SpeechDataModule(**{k: v for k, v in cfg.items() if k != "_target_"})
    dm.setup()
    assert sorted(it.id for it in data.items) == sorted(dm.items[i].id for i in dm.split_indices["test"])
    assert data.eval_set == "test" and len(set(data.speakers)) == 1
    seen = {dm.items[i].speaker for s in ("train", "val") for i in dm.split_indices[s]}
    assert not seen & set(data.speakers)


def test_threshold_data_keeps_the_training_split_and_only_the_evaluated_labels(tiny_corpus, tmp_path):
    """evaluate.labels narrows the threshold data to that vocabulary *after* the training run's split:
    the same validation items as without it, less the other words, whatever the run's relabelling."""
    cfg = _manifest_cfg(tiny_corpus, labels=[1, 2, 3])  # trained on corpus words 1-3, relabelled 0-2
    full = _ctx(tmp_path).val_data(_Ckpt(cfg))
    sub = _ctx(tmp_path, ["evaluate.labels=[2,3]"]).val_data(_Ckpt(cfg))
    dm = SpeechDataModule(**{k: v for k, v in cfg.items() if k != "_target_"})
    dm.setup()
    corpus_label = {new: old for old, new in dm.label_map.items()}
    want = sorted(it.id for it in full.items if corpus_label[it.label] in {2, 3})
    assert len(want) < len(full.items) and sorted(it.id for it in sub.items) == want
    assert sorted(it.id for it in full.items) == sorted(dm.items[i].id for i in dm.split_indices["val"])


def test_disjointness_is_checked_by_item_and_by_speaker(tiny_corpus):
    trained = TrainedOn.from_config(_manifest_cfg(tiny_corpus))
    dm = trained.dm
    train_item = dm.items[dm.split_indices["train"][0]]
    test_items = [dm.items[i] for i in dm.split_indices["test"]]
    wave = np.zeros(160, np.float32)
    check_disjoint(EvalData(test_items, [wave] * len(test_items), eval_set="test"), trained, speakers=True)
    with pytest.raises(ValueError, match="not disjoint.*1 items it trained or validated on"):
        check_disjoint(EvalData([train_item], [wave], eval_set="unseen"), trained, speakers=False)
    # another recording of a training speaker: a new item, but a voice the checkpoint has heard
    other = dataclasses.replace(train_item, id="new", path="/elsewhere/new.wav")
    check_disjoint(EvalData([other], [wave], eval_set="unseen"), trained, speakers=False)
    with pytest.raises(ValueError, match="of its speakers"):
        check_disjoint(EvalData([other], [wave], eval_set="unseen"), trained, speakers=True)


def test_speaker_protocols_get_new_synthetic_voices_when_the_test_split_has_one(tmp_path):
    cfg = _synthetic_cfg(tmp_path / "synth")
    for protocol in (CrossSpeaker(), Keyword()):
        data = _ctx(tmp_path).eval_data(_Ckpt(cfg), protocol)
        trained = TrainedOn.from_config(cfg)
        test_spk = {trained.dm.items[i].speaker for i in trained.dm.split_indices["test"]}
        assert data.eval_set == "test+new_voices"
        # the test speaker plus the generator's speakers 3 and 4, which the corpus does not hold
        assert set(data.speakers) == test_spk | {"syn03", "syn04"}
        assert (tmp_path / "synth_voices5" / "manifest.csv").is_file()
        assert "synthetic voices generated for this evaluation" in data.description
        check_disjoint(data, trained, speakers=True)
    # the other protocols need no second voice
    assert _ctx(tmp_path).eval_data(_Ckpt(cfg), CPORetrieval(cpos=["gain_-3dB"])).eval_set == "test"
    with pytest.raises(ValueError, match="needs at least 2 speakers the checkpoint never trained"):
        _ctx(tmp_path, ["evaluate.new_voices=0"]).eval_data(_Ckpt(cfg), CrossSpeaker())


def test_thresholds_fall_back_to_train_and_val_when_val_cannot_form_pairs(tmp_path):
    cfg = _synthetic_cfg(tmp_path / "synth")
    ctx = _ctx(tmp_path)
    trained = TrainedOn.from_config(cfg)
    heard = {trained.dm.items[i].speaker for s in ("train", "val") for i in trained.dm.split_indices[s]}
    for protocol in (CrossSpeaker(), Keyword(n_utterances=6)):
        trial, data, note = ctx.threshold_trial(_Ckpt(cfg), protocol)
        assert trial.relevant.any() and set(data.speakers) == heard
        assert note.startswith(f"the val split cannot form {protocol.name} pairs (1 speaker")
        assert "val+train" in note
    trial, data, note = ctx.threshold_trial(_Ckpt(cfg), CPORetrieval(cpos=["gain_-3dB"]))
    assert note == "" and len(set(data.speakers)) == 1  # the validation split serves: no fallback
    with pytest.raises(ValueError, match="no data to choose a threshold for the cross_speaker protocol"):
        _ctx(tmp_path, ["evaluate.threshold_fallback=null"]).threshold_trial(_Ckpt(cfg), CrossSpeaker())
