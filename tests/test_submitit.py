"""Cluster sweeps (issue 15): ``-m hydra/launcher=submitit_local`` runs a 2-job hash-length sweep
through hydra-submitit-launcher (optional extra ``cluster``), the same submission path as
``submitit_slurm``; each job writes its summary and the sweep its table.  Skipped only when the
plugin is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import speechret  # noqa: F401  (registers ${speechret_root:} and the other config resolvers)

REPO = Path(__file__).resolve().parents[1]


def test_launcher_configs_compose_without_the_plugin():
    """The launcher configs are complete and interpolate the run's node count."""
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=["hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.num_nodes=2",
                                          "paths.output_dir=/tmp/x"], return_hydra_config=True)
        local = compose("train", overrides=["hydra/launcher=submitit_local", "paths.output_dir=/tmp/x"],
                        return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.nodes == 2 and launcher.submitit_folder.endswith(".submitit/%j")
    assert local.hydra.launcher._target_.endswith("submitit_launcher.LocalLauncher")


@pytest.mark.slow
def test_submitit_local_sweep_runs_both_jobs(tiny_corpus, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher not installed "
                        "(optional extra: pip install 'speechret[cluster]')")
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, str(REPO / "train.py"), "-m", "hydra/launcher=submitit_local", "experiment=lstm_hash",
           "model.net.lstm_units=16",
           "model.hash_bits=16,32", "debug=limit", "trainer.max_epochs=1", "logger=csv", "test=false",
           "data=manifest", f"data.root={tiny_corpus / 'manifest.csv'}", "data.batch_size=4", "data.num_workers=0",
           "data.val_fraction=0.25", "data.test_fraction=0.25", f"hydra.sweep.dir={sweep}"]
    env = dict(os.environ, HYDRA_FULL_ERROR="1", OMP_NUM_THREADS="1", SPEECHRET_PROGRESS="0")
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    for job, bits in (("0", 16), ("1", 32)):
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert summary["hash_bits"] == bits and summary["epochs"] >= 1
    assert (sweep / ".submitit").is_dir()  # the jobs went through submitit
    rows = (sweep / "summary.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in rows[1:]] == ["16", "32"]
