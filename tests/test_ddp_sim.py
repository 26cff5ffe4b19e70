"""DDP that behaves (issue 15): ``trainer=ddp_sim`` (2 CPU processes, gloo) through ``train.py``.

* A DDP child started by Lightning runs its parent's *job* (:mod:`speechret.utils.ddp`), so a
  ``-m`` sweep launches each job once instead of re-running the sweep in every child.
* Only rank 0 prints, writes ``summary.json`` and checkpoints.
* The validation mAP a 2-process run records for its best checkpoint equals what one process
  computes for the same weights: the property ``tests/test_ddp_metrics.py`` establishes for the
  gathered retrieval metrics (training itself differs between 1 and 2 processes: other batches).

The slow tests start ``train.py`` (``$SPEECHRET_TRAIN_SCRIPT`` to try another entry point) in a
subprocess: Lightning's ``ddp`` launcher re-runs the script for rank 1, which pytest is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from speechret.apps.train import build_datamodule, build_model
from speechret.utils import ddp

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(os.environ.get("SPEECHRET_TRAIN_SCRIPT", REPO / "train.py"))
RUN_LINE = "[speechret] run directory:"


# ------------------------------------------------------------------ the child's command line
def test_a_ddp_child_runs_its_parents_job_not_the_sweep(monkeypatch):
    monkeypatch.delenv(ddp.JOB_ENV, raising=False)
    job = ddp.export_job("/runs/multi/0", overrides=["experiment=cnn_hash", "model.hash_bits=16"])
    env = {ddp.JOB_ENV: os.environ[ddp.JOB_ENV], "LOCAL_RANK": "1"}
    argv = ["train.py", "-m", "experiment=cnn_hash", "model.hash_bits=16,32", 'hydra.run.dir="x"']
    new = ddp.ddp_child_argv(argv, env, ppid=job["pid"])
    assert new == ["train.py", "experiment=cnn_hash", "model.hash_bits=16", 'hydra.run.dir="/runs/multi/0"',
                   "hydra.output_subdir=null", "hydra.job.name=train_ddp_process_1"]
    assert "-m" not in new and not any("," in a for a in new)
    # not a child: rank 0, no LOCAL_RANK, or a job exported by some other process
    assert ddp.ddp_child_argv(argv, {**env, "LOCAL_RANK": "0"}, ppid=job["pid"]) is None
    assert ddp.ddp_child_argv(argv, {ddp.JOB_ENV: env[ddp.JOB_ENV]}, ppid=job["pid"]) is None
    assert ddp.ddp_child_argv(argv, env, ppid=job["pid"] + 1) is None
    ddp.clear_job()
    assert ddp.JOB_ENV not in os.environ


def test_export_job_needs_a_hydra_run(monkeypatch):
    from hydra.core.hydra_config import HydraConfig

    monkeypatch.delenv(ddp.JOB_ENV, raising=False)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # no Hydra run (another test may have left one set)
    assert ddp.export_job("/x") is None and ddp.JOB_ENV not in os.environ


def test_ddp_trainer_configs_compose():
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        sim = compose("train", overrides=["trainer=ddp_sim", "paths.output_dir=/tmp/x"])
        gpu = compose("train", overrides=["trainer=ddp", "trainer.num_nodes=2", "paths.output_dir=/tmp/x"])
    assert sim.trainer.devices == 2 and sim.trainer.accelerator == "cpu"
    assert sim.trainer.strategy.process_group_backend == "gloo"
    assert gpu.trainer.accelerator == "auto" and gpu.trainer.num_nodes == 2 and gpu.trainer.sync_batchnorm == "auto"


def test_sync_batchnorm_auto_only_with_batchnorm_on_several_cuda_processes():
    from speechret.apps.train import resolve_sync_batchnorm

    bn, plain = torch.nn.Sequential(torch.nn.BatchNorm1d(3)), torch.nn.Linear(2, 2)
    cfg = OmegaConf.create({"accelerator": "gpu", "devices": 2, "num_nodes": 1, "sync_batchnorm": "auto"})
    assert resolve_sync_batchnorm(cfg, bn).sync_batchnorm is True
    assert resolve_sync_batchnorm(cfg, plain).sync_batchnorm is False
    assert resolve_sync_batchnorm(OmegaConf.merge(cfg, {"accelerator": "cpu"}), bn).sync_batchnorm is False
    assert resolve_sync_batchnorm(OmegaConf.merge(cfg, {"devices": 1}), bn).sync_batchnorm is False
    assert resolve_sync_batchnorm(OmegaConf.merge(cfg, {"devices": 1, "num_nodes": 2}), bn).sync_batchnorm is True
    assert cfg.sync_batchnorm == "auto"  # the run's config is left as written


# ------------------------------------------------------------------ end to end (2 CPU processes)
def _overrides(root: Path) -> list[str]:
    return ["experiment=lstm_hash", "trainer=ddp_sim", "data=manifest", f"data.root={root / 'manifest.csv'}",
            "data.batch_size=4", "data.eval_batch_size=3", "data.val_fraction=0.25", "data.test_fraction=0.25",
            "data.num_workers=0", "model.net.lstm_units=16", "trainer.max_epochs=1", "test=false", "logger=csv",
            "callbacks.rich_progress_bar=null", "callbacks.early_stopping=null", "seed=0"]


def _run(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, HYDRA_FULL_ERROR="1", OMP_NUM_THREADS="1", SPEECHRET_PROGRESS="0")
    env.pop(ddp.JOB_ENV, None)
    res = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, env=env,
                         timeout=timeout)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res


def _one_process_val_map(root: Path, out: Path, ckpt: str, hash_bits: int | None = None) -> float:
    extra = [f"model.hash_bits={hash_bits}"] if hash_bits else []
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=[*_overrides(root), *extra, f"paths.output_dir={out}"])
    dm = build_datamodule(cfg)
    dm.setup()
    model = build_model(cfg, dm)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=out)
    (res,) = trainer.validate(model, datamodule=dm, ckpt_path=ckpt, verbose=False)
    return res["val/map"]


def _check_job(job_dir: Path, stdout: str) -> dict:
    summary = json.loads((job_dir / "summary.json").read_text())
    assert (summary["global_rank"], summary["world_size"]) == (0, 2)  # written by rank 0 of 2
    assert (job_dir / "train_ddp_process_1.log").is_file()  # rank 1 ran this job, in this directory
    assert Path(summary["best_checkpoint"]).is_file() and "last.ckpt" in summary["checkpoint_mb"]
    return summary


@pytest.mark.slow
def test_ddp_sim_multirun_launches_each_job_once(tiny_corpus, tmp_path):
    """One 2-job sweep of 2-process runs: each job launched once (not the sweep once per rank), its
    output written by rank 0 only, and its recorded best val mAP equal to one process's on the same
    weights (one end-to-end run for all three: the suite's time is spent once)."""
    sweep = tmp_path / "sweep"
    res = _run(["-m", *_overrides(tiny_corpus), "model.hash_bits=16,32", f"hydra.sweep.dir={sweep}"])
    assert res.stdout.count(RUN_LINE) == 2, res.stdout  # two jobs, each printed by its rank 0 only
    assert res.stdout.count("CONFIG") == 2, res.stdout
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == ["0", "1"]
    for job, bits in (("0", 16), ("1", 32)):
        summary = _check_job(sweep / job, res.stdout)
        assert summary["hash_bits"] == bits
    rows = (sweep / "summary.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in rows[1:]] == ["16", "32"]
    s0 = json.loads((sweep / "0" / "summary.json").read_text())
    one = _one_process_val_map(tiny_corpus, tmp_path / "check", s0["best_checkpoint"], hash_bits=16)
    assert s0["metrics"]["best/val/map"] == pytest.approx(one, abs=1e-6)
