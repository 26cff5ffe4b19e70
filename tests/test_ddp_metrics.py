"""Retrieval metrics under DDP (issue 11, deliverable 3): ``val/map`` of 2 CPU processes (gloo)
equals the single-process value, on a validation set whose size is odd so that Lightning's
``DistributedSampler`` repeats an item to even out the ranks.

The workers are forked (``ddp_fork``, about a second to start; ``ddp_spawn`` re-imports torch and
Lightning in each, over a minute on two busy cores).  Forking is safe here only with one intra-op
thread: a forked child hangs in its first OpenMP/MKL parallel region when the parent ran one with
several threads (GNU OpenMP is not fork-safe), and numba's OpenMP pool, which paper C's sliding
distances use, aborts a forked child outright.  So the end-to-end run uses paper B's fixed codes
(distances in torch), and paper C's variable-length codes are checked through the same gloo
exchange without distances in the workers.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from speechret.models.hash_modules import HashingModule
from speechret.apps.train import build_datamodule, build_model

REPO = Path(__file__).resolve().parents[1]


def _validate(model, dm, **trainer_kwargs) -> dict[str, float]:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, **trainer_kwargs)
    (res,) = trainer.validate(model, datamodule=dm, verbose=False)
    return res


@pytest.mark.slow
def test_val_map_with_two_ddp_processes_equals_one_process(tiny_corpus, tmp_path, fork_safe_threads):
    """The same module and data validated by 1 process and by 2 (gloo): the same ``val/map``.

    9 validation items (3 of each of 3 words, stratified random split), 2 a batch: rank 0 gets
    items 0 2 4 6 8, rank 1 gets 1 3 5 7 and item 0 again.  The old per-rank mAP averaged with
    ``sync_dist=True`` gave 0.875 here against 0.679 for one process.
    """
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=[
            "experiment=cnn_hash", "data=manifest", f"data.root={tiny_corpus / 'manifest.csv'}",
            "data.split=random", "data.labels=[0,1,2]", "data.val_fraction=0.375", "data.test_fraction=0.25",
            "data.eval_batch_size=2", "data.num_workers=0", f"paths.output_dir={tmp_path}"])
    torch.manual_seed(0)
    dm = build_datamodule(cfg)
    dm.setup()
    assert len(dm.datasets["val"]) == 9
    model = build_model(cfg, dm)
    one = _validate(model, dm, devices=1)["val/map"]
    strategy = "ddp_spawn" if torch.cuda.is_initialized() else "ddp_fork"  # no fork once CUDA is initialised
    two = _validate(model, dm, devices=2, strategy=strategy)["val/map"]
    assert 0 < one < 1
    assert two == pytest.approx(one, abs=1e-6)


def _segments(n: int) -> list[np.ndarray]:
    """Paper C-like codes: item k has k + 1 segments of 27 bits."""
    return [np.arange((k + 1) * 27).reshape(k + 1, 27) % (k + 2) == 0 for k in range(n)]


def _gather_on_rank(rank: int, world: int, init_file: str, shards, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        module = HashingModule(torch.nn.Identity(), hash_method="paper_c")
        module._val = shards[rank]
        results.put((rank, *module.epoch_eval_set()))
    finally:
        torch.distributed.destroy_process_group()


def test_paper_c_codes_gathered_over_two_gloo_processes(tmp_path, fork_safe_threads, gloo_ranks):
    """Both ranks end with every item's list of segment codes once, in dataset order."""
    seg = _segments(5)
    # a DistributedSampler over 5 items, 2 a batch: rank 0 gets 0 2 4, rank 1 gets 1 3 and 0 again
    shards = [
        [([seg[0], seg[2]], np.array([0, 1]), np.array([0, 2])), ([seg[4]], np.array([1]), np.array([4]))],
        [([seg[1], seg[3]], np.array([0, 1]), np.array([1, 3])), ([seg[0]], np.array([0]), np.array([0]))],
    ]
    got = gloo_ranks(_gather_on_rank, 2, str(tmp_path / "pg"), shards)
    for codes, labels in got.values():
        assert labels.tolist() == [0, 0, 1, 1, 1]
        assert len(codes) == 5 and all(np.array_equal(c, s) for c, s in zip(codes, seg))


def test_epoch_eval_set_in_one_process_keeps_each_index_once_in_order():
    """Fixed-length codes: repeats dropped, items ordered by dataset index; the list is cleared."""
    module = HashingModule(torch.nn.Identity(), hash_method="paper_a")
    bits = np.eye(3, dtype=bool)
    module._val = [(bits[[2, 0]], np.array([7, 5]), np.array([2, 0])),
                   (bits[[1, 2]], np.array([6, 7]), np.array([1, 2]))]
    codes, labels = module.epoch_eval_set()
    np.testing.assert_array_equal(codes, bits)
    assert labels.tolist() == [5, 6, 7] and module._val == []


def test_variable_length_codes_refuse_a_forking_ddp_strategy():
    """Paper C's numba sliding distances are not fork-safe: ddp_fork is refused with a clear error."""
    from types import SimpleNamespace

    from speechret.models.components.bilstm_baseline import BiLSTMBaseline
    from speechret.models.hash_modules import CTCHashModule

    module = CTCHashModule(BiLSTMBaseline(n_features=8, hidden=8, layers=1))
    module._trainer = SimpleNamespace(strategy=SimpleNamespace(_start_method="fork", world_size=2))
    with pytest.raises(RuntimeError, match="ddp_spawn"):
        module.setup("fit")
    module._trainer = SimpleNamespace(strategy=SimpleNamespace(_start_method="popen", world_size=2))
    module.setup("fit")  # plain ddp starts fresh processes: fine


def test_cross_speaker_map_leaves_each_querys_own_speaker_out():
    """``val/map_cross_speaker`` ranks only other speakers' items: codes that match a speaker's own
    repetitions but not the other speaker's give a perfect ``val/map`` share there and not here."""
    module = HashingModule(torch.nn.Identity(), hash_method="paper_a")
    logged: dict[str, float] = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    # speaker a: word 0 = code 0, word 1 = code 1; speaker b swaps them (a speaker-bound code)
    codes = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1],
                      [1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=bool)
    labels = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    speakers = np.array(["a"] * 4 + ["b"] * 4)
    module._val = [(codes, labels, np.arange(8), speakers)]
    module._log_map("val")
    # every query ranks the other speaker's 2 wrong-word items first: AP = (1/3 + 2/4) / 2
    assert logged["val/map_cross_speaker"] == pytest.approx(5 / 12)
    assert logged["val/map"] > logged["val/map_cross_speaker"]
    # the same codes but one speaker: no cross-speaker figure at all
    module._val = [(codes, labels, np.arange(8), np.array(["a"] * 8))]
    logged.clear()
    module._log_map("val")
    assert "val/map_cross_speaker" not in logged and "val/map" in logged
