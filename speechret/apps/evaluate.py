"""The Hydra entry of ``evaluate.py`` / ``speechret evaluate``: compose ``conf/evaluate.yaml`` and run
:func:`speechret.evaluate.runner.run_evaluation` (protocols, baselines, evaluation sets: see that
module and ``conf/evaluate.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from speechret.config import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """``speechret evaluate ckpt_path=<ckpt> protocol=<name> [...]``: writes metrics.json, plots and
    report.md into the run directory."""
    from speechret.evaluate.runner import run_evaluation  # imported here: --help stays quick

    run_evaluation(cfg)
