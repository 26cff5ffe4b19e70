"""Repeated augmentation (speechret.augment.RepeatBatch) and its place in the DataModule."""

from __future__ import annotations

import pytest
import torch

from speechret.augment import RepeatBatch
from speechret.errors import ConfigError


def _batch(b: int = 3) -> dict:
    return {
        "wave": torch.arange(b * 5, dtype=torch.float32).view(b, 5),
        "wave_lengths": torch.tensor([5, 4, 2][:b]),
        "label": torch.tensor([2, 0, 1][:b]),
        "targets": torch.tensor([[1, 2], [3, -1], [4, 5]][:b]),
        "ids": ["a", "b", "c"][:b],
        "speakers": ["s1", "s2", "s1"][:b],
        "scalar": torch.tensor(0.5),
        "name": "kept",
    }


def test_repeat_batch_puts_each_clips_copies_side_by_side_in_every_per_row_field():
    batch = _batch()
    out = RepeatBatch(repeats=3).train()(batch)
    order = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for key in ("wave", "wave_lengths", "label", "targets"):
        assert torch.equal(out[key], batch[key][order]), key
    assert out["ids"] == [batch["ids"][i] for i in order]
    assert out["speakers"] == [batch["speakers"][i] for i in order]
    assert out["scalar"] is batch["scalar"] and out["name"] == "kept"


def test_repeat_batch_is_the_identity_in_eval_and_for_one_repeat_and_refuses_bad_counts():
    batch = _batch()
    assert RepeatBatch(repeats=2).eval()(batch) is batch
    assert RepeatBatch(repeats=1).train()(batch) is batch
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigError, match="RepeatBatch.repeats"):
            RepeatBatch(repeats=bad)


def test_repeated_clips_fill_a_training_step_of_batch_size_rows_each_copy_augmented_apart(build_speechret_hash):
    """With ``augment=voices_repeat`` a training batch keeps ``data.batch_size`` rows, drawn as
    ``batch_size / 2`` distinct clips; a clip's two rows carry its label and id but their own
    augmentation draws (different features)."""
    _, dm, _ = build_speechret_hash("augment=voices_repeat", "data.batch_size=4")
    raw = next(iter(dm.train_dataloader()))
    assert len(raw["ids"]) == 2
    batch = dm.prepare_batch(raw, augment=True)
    assert batch["features"].shape[0] == 4
    assert batch["ids"][0::2] == batch["ids"][1::2] == raw["ids"]
    assert torch.equal(batch["label"][0::2], batch["label"][1::2])
    for i in (0, 2):  # each copy on its own draws: speed, shift, gain, warp and masks differ
        a, b = batch["features"][i], batch["features"][i + 1]
        n = min(int(batch["feature_lengths"][i]), int(batch["feature_lengths"][i + 1]))
        assert not torch.allclose(a[:n], b[:n])
    evaluated = dm.prepare_batch(next(iter(dm.val_dataloader())), augment=False)
    assert len(evaluated["ids"]) == evaluated["features"].shape[0]  # validation is never repeated
    assert len(set(evaluated["ids"])) == len(evaluated["ids"])


def test_a_batch_size_that_repeats_cannot_fill_is_refused_by_name(tiny_corpus):
    from speechret.data import SpeechDataModule

    with pytest.raises(ConfigError, match=r"data.batch_size=5 .* augment.repeat.repeats=2"):
        SpeechDataModule(corpus="synthetic", root=tiny_corpus, batch_size=5, repeat_augment=RepeatBatch(2))
    SpeechDataModule(corpus="synthetic", root=tiny_corpus, batch_size=6, repeat_augment=RepeatBatch(2))
