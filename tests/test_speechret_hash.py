"""speechret's own method (experiment speechret_hash): it learns, and its front end is shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from speechret.metrics import label_relevance, mean_average_precision
from speechret.hashing.hasher import Hasher
from speechret.hashing import ber
from speechret.apps.train import build_datamodule, build_model

REPO = Path(__file__).resolve().parents[1]


def _cfg(root, out, *extra):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose("train", overrides=[
            "experiment=speechret_hash", "data=manifest", f"data.root={root / 'manifest.csv'}",
            "data.val_fraction=0.25", "data.test_fraction=0.25", f"paths.output_dir={out}", *extra])


@pytest.mark.parametrize("net", ["resnet", "bc_resnet"])
def test_speechret_hash_overfits_a_tiny_batch_to_map_1(tiny_corpus, tmp_path, net):
    """Each backbone of conf/model/net/ fits a tiny batch: its codes rank every item's own word first."""
    torch.manual_seed(0)
    cfg = _cfg(tiny_corpus, tmp_path, "data.batch_size=16", "model.net.dropout=0.0", f"model/net={net}")
    dm = build_datamodule(cfg)
    dm.setup()
    model = build_model(cfg, dm)
    batch = dm.prepare_batch(next(iter(dm.train_dataloader())))  # front end, no augmentation
    assert len(set(batch["label"].tolist())) > 1
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):
        loss = model.compute_loss(model(batch["features"], batch["feature_lengths"]), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        codes = model.codes(model(batch["features"], batch["feature_lengths"]))
    labels = batch["label"].numpy()
    dist = ber(codes, codes, pairwise=True)
    res = mean_average_precision(dist, label_relevance(labels, labels), exclude=np.eye(len(labels), dtype=bool))
    assert res["map"] == 1.0


def test_trimming_makes_leading_silence_irrelevant_to_the_code(tiny_corpus, tmp_path):
    """The Hasher runs the run's front end: a query with 0.32 s of extra leading silence (a whole
    number of 10 ms hops) trims to the same samples and gets the identical code."""
    torch.manual_seed(0)
    cfg = _cfg(tiny_corpus, tmp_path)
    dm = build_datamodule(cfg)
    dm.setup()
    model = build_model(cfg, dm)
    hasher = Hasher.from_config(cfg, model.state_dict())
    assert hasher.frontend is not None
    wave = dm._load_item(0)
    padded = np.concatenate([np.zeros(5120, dtype=np.float32), wave, np.zeros(3000, dtype=np.float32)])
    np.testing.assert_array_equal(hasher(padded), hasher(wave))


SPEAKER_ADVERSARY = ["+model.hash_objective.terms.speaker._target_=speechret.models.losses.SpeakerAdversaryLoss",
                     "+model.hash_objective.terms.speaker.n_bits=${model.hash_bits}",
                     "+model.hash_objective.weights.speaker=0.3"]


def test_speaker_adversary_trains_on_the_training_speakers_and_its_checkpoint_hashes(tiny_corpus, tmp_path):
    """The adversary indexes exactly the training split's speakers (sorted), and the checkpoint
    (classifier rows + speaker list) loads into a Hasher that hashes a clip to a code of the run's width."""
    from speechret.apps.train import train

    cfg = _cfg(tiny_corpus, tmp_path, "debug=limit", "trainer.max_epochs=1", "logger=csv", "test=false",
               "data.batch_size=4", "model.net.channels=[8,16]", "model.hash_bits=32", *SPEAKER_ADVERSARY)
    summary = train(cfg)
    dm = build_datamodule(cfg)
    dm.setup()
    hasher = Hasher.from_checkpoint(summary["best_checkpoint"])
    adversary = hasher.module.hash_objective.terms["speaker"]
    assert list(adversary.index) == dm.split_speakers("train") and len(adversary.index) >= 2
    assert not set(adversary.index) & set(dm.split_speakers("val"))
    wave = dm._load_item(dm.split_indices["val"][0])
    with torch.no_grad():
        code = hasher(wave)
    assert np.asarray(code).shape[-1] == 32


def test_mixup_loss_weighs_both_labels_and_trains(tiny_corpus, tmp_path):
    """With ``augment=voices_mixup`` a training batch carries its partners (``mix_index``) and λ;
    the loss equals λ ℓ(y) + (1 − λ) ℓ(y_π) computed by hand (CE and the hash objective), and a
    Lightning fit with it runs and checkpoints."""
    from speechret.apps.train import train

    torch.manual_seed(0)
    cfg = _cfg(tiny_corpus, tmp_path, "augment=voices_mixup", "data.batch_size=8")
    dm = build_datamodule(cfg)
    dm.setup()
    model = build_model(cfg, dm).train()
    batch = dm.prepare_batch(next(iter(dm.train_dataloader())), augment=True)
    index, lam = batch["mix_index"], float(batch["mix_weight"])
    assert 0.5 <= lam <= 1.0 and sorted(index.tolist()) == list(range(len(index)))
    with torch.no_grad():
        out = model(batch["features"], batch["feature_lengths"])
        mixed = model.compute_loss(out, batch)
        own = model.compute_loss(out, {"label": batch["label"], "speakers": batch["speakers"]})
        partner = model.compute_loss(out, {"label": batch["label"][index]})
    torch.testing.assert_close(mixed, lam * own + (1 - lam) * partner)
    out_dir = tmp_path / "fit"
    summary = train(_cfg(tiny_corpus, out_dir, "augment=voices_mixup", "debug=limit", "trainer.max_epochs=1",
                         "logger=csv", "test=false", "data.batch_size=4", "model.net.channels=[8,16]",
                         "model.hash_bits=32"))
    assert Path(summary["best_checkpoint"]).is_file()


def test_a_model_without_a_mixed_loss_refuses_mixed_batches():
    """A CTC model has no loss for superposed items: a mixed batch is a ConfigError naming augment.mix."""
    import pytest

    from speechret.errors import ConfigError
    from speechret.models.hash_modules import CTCHashModule, HashingModule

    assert not CTCHashModule.mixes_targets and not HashingModule.mixes_targets
    module = HashingModule.__new__(HashingModule)
    with pytest.raises(ConfigError, match="augment.mix"):
        HashingModule._shared_step(module, {"features": torch.zeros(2, 3, 4), "mix_index": torch.tensor([1, 0])},
                                   "train")


def test_training_length_is_a_step_budget_and_the_schedule_spans_it(tiny_corpus, tmp_path):
    """conf/experiment/speechret_hash.yaml: trainer.max_steps ends the run (before max_epochs), and
    the one-cycle schedule's total_steps is that budget, so it anneals to its end at the last step
    whatever the vocabulary (10 words: 120 epochs, 20 words: 60, both 4200 steps on DSPSpeech-20)."""
    from speechret.apps.train import train

    budget = _cfg(tiny_corpus, tmp_path).trainer.max_steps  # the experiment's own step budget
    cfg = _cfg(tiny_corpus, tmp_path, "data.batch_size=4", "trainer.max_steps=6", "logger=none", "test=false",
               "callbacks=[model_checkpoint]", "print_config=false")  # the project's checkpoints, last.ckpt included
    # max_epochs is only a cap: 10 voices x 10 words x 8 repetitions are 25 steps of 32 clips an epoch,
    # and even that split must reach the experiment's step budget before the cap
    assert budget > 0 and cfg.trainer.max_epochs * (10 * 10 * 8 // 32) >= budget and cfg.trainer.max_steps == 6
    summary = train(cfg)
    assert summary["global_step"] == 6 and summary["epochs"] < cfg.trainer.max_epochs
    sched = torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=False)["lr_schedulers"][0]
    assert sched["total_steps"] == 6 and sched["last_epoch"] == 6


def test_voices_band_puts_the_band_limited_channel_between_speed_and_noise(tiny_corpus, tmp_path):
    """``augment=voices_band`` is ``voices`` with :class:`speechret.augment.RandomLowpass` after the
    speed perturbation and before the noise (the noise fills the cut band), and a training batch
    goes through it on the way to finite features."""
    from speechret.augment import AddNoise, RandomLowpass, SpeedPerturb

    cfg = _cfg(tiny_corpus, tmp_path, "augment=voices_band", "data.batch_size=8")
    dm = build_datamodule(cfg)
    dm.setup()
    kinds = [type(op) for op in dm.wave_augment.ops]
    assert kinds.index(SpeedPerturb) < kinds.index(RandomLowpass) < kinds.index(AddNoise)
    low = dm.wave_augment.ops[kinds.index(RandomLowpass)]
    assert (low.min_fc, low.max_fc, low.p, low.sample_rate) == (3500.0, 7500.0, 0.5, cfg.data.sample_rate)
    batch = dm.prepare_batch(next(iter(dm.train_dataloader())), augment=True)
    assert bool(torch.isfinite(batch["features"]).all())
