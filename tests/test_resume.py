"""``last.ckpt`` is the true last state and resumes a run exactly (issue 15).

Lightning 2.6's ``ModelCheckpoint(save_last=True, save_top_k=1, monitor=...)`` refreshed
``last.ckpt`` only at an epoch that improved the monitored metric, so ``ckpt_path=last.ckpt``
restarted from that epoch.  ``conf/callbacks/model_checkpoint.yaml`` now saves ``last.ckpt``
every epoch (a second ``ModelCheckpoint``) and ``conf/callbacks/rng_state.yaml`` stores the
random generators in it, so 2 epochs + resume to 4 equals 4 epochs in one go.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from speechret.apps.train import train
from speechret.hashing.hasher import Hasher

REPO = Path(__file__).resolve().parents[1]


def _cfg(root: Path, out: Path, *extra: str):
    overrides = ["experiment=lstm_hash", "data=manifest", f"data.root={root / 'manifest.csv'}", "data.batch_size=4",
                 "data.val_fraction=0.25", "data.test_fraction=0.25", "data.num_workers=0",
                 "model.net.lstm_units=16", "model.hash_bits=32", "callbacks.early_stopping=null",
                 "callbacks.rich_progress_bar=null", "logger=csv", "test=false", "seed=0", "++print_config=false",
                 f"paths.output_dir={out}", *extra]
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose("train", overrides=overrides)


def _weights(path: str | Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


@pytest.fixture(scope="module")
def runs(tiny_corpus, tmp_path_factory):
    """A 4-epoch run, and a 2-epoch run resumed from its last.ckpt up to 4 epochs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        whole_dir, cut_dir = tmp_path_factory.mktemp("whole"), tmp_path_factory.mktemp("cut")
        whole = train(_cfg(tiny_corpus, whole_dir, "trainer.max_epochs=4"))
        first = train(_cfg(tiny_corpus, cut_dir, "trainer.max_epochs=2"))
        last = cut_dir / "checkpoints" / "last.ckpt"
        after_two = torch.load(last, map_location="cpu", weights_only=False)
        resumed = train(_cfg(tiny_corpus, cut_dir, "trainer.max_epochs=4", f"ckpt_path={last}"))
    finally:
        torch.set_num_threads(threads)
    return {"whole": whole, "first": first, "after_two": after_two, "resumed": resumed,
            "whole_dir": whole_dir, "cut_dir": cut_dir}


def test_last_checkpoint_holds_the_last_epoch(runs):
    """After 2 epochs last.ckpt is epoch 1 (0-based) at the run's final step, whichever epoch was best."""
    ckpt, first = runs["after_two"], runs["first"]
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == first["global_step"] > 0
    assert first["last_checkpoint"].endswith("last.ckpt")
    assert "optimizer_states" in ckpt and ckpt["optimizer_states"]  # full state: it can resume


def test_resume_equals_an_uninterrupted_run(runs):
    whole, resumed = runs["whole"], runs["resumed"]
    assert resumed["epochs"] == whole["epochs"] == 4
    assert resumed["global_step"] == whole["global_step"] == 2 * runs["first"]["global_step"]
    for key in ("val/map", "val/loss", "train/loss", "best/val/map"):
        assert resumed["metrics"][key] == pytest.approx(whole["metrics"][key], abs=1e-6), key
    a = _weights(runs["whole_dir"] / "checkpoints" / "last.ckpt")
    b = _weights(runs["cut_dir"] / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    # the resumed run (the CSV logger's second version) logged epochs 2 and 3 only: nothing re-run
    first, second = (_logged_epochs(runs["cut_dir"] / "csv" / v / "metrics.csv") for v in ("version_0", "version_1"))
    assert (first, second) == ({0, 1}, {2, 3})


def _logged_epochs(path: Path) -> set[int]:
    import csv

    with path.open() as f:
        return {int(float(r["epoch"])) for r in csv.DictReader(f) if r.get("epoch")}


def test_summary_reports_checkpoint_sizes(runs):
    summary = json.loads((runs["whole_dir"] / "summary.json").read_text())
    sizes = summary["checkpoint_mb"]
    assert "last.ckpt" in sizes and Path(summary["best_checkpoint"]).name in sizes
    for name, mb in sizes.items():
        assert mb == pytest.approx((runs["whole_dir"] / "checkpoints" / name).stat().st_size / 1e6, abs=1e-3)


def test_weights_only_best_checkpoint_loads_in_the_hasher(tiny_corpus, tmp_path):
    """callbacks.model_checkpoint.save_weights_only=true: a smaller best checkpoint without optimizer
    state, from which test() and the Hasher (index.py / search.py / evaluate.py) still work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s = train(_cfg(tiny_corpus, tmp_path, "trainer.max_epochs=1",
                       "callbacks.model_checkpoint.save_weights_only=true", "test=true"))
    finally:
        torch.set_num_threads(threads)
    best = torch.load(s["best_checkpoint"], map_location="cpu", weights_only=False)
    assert "optimizer_states" not in best and "speechret" in best
    assert s["checkpoint_mb"][Path(s["best_checkpoint"]).name] < s["checkpoint_mb"]["last.ckpt"]
    assert "test/map" in s["metrics"]
    hasher = Hasher.from_checkpoint(s["best_checkpoint"])
    wav = sorted(tiny_corpus.rglob("*.wav"))[:2]
    codes = hasher([str(w) for w in wav])
    assert codes.shape == (2, 32)
