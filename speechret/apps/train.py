"""Training pipeline behind ``train.py`` (lightning-hydra-template style).

``train(cfg)``: seed → features, CPO augmentation, DataModule → model (``num_classes`` filled in
from the data) → callbacks, loggers, Trainer → fit → test on the best checkpoint → write
``summary.json`` (metrics, epochs, wall time, checkpoint) and ``config.yaml`` (resolved) into the
run directory, and copy the config next to the best checkpoint.  The resolved config is also
stored inside every checkpoint, which is all :class:`speechret.hashing.hasher.Hasher` needs.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from speechret.config import CONF_DIR

log = logging.getLogger(__name__)


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group that has a ``_target_``."""
    if not group:
        return []
    return [instantiate(c) for c in group.values() if isinstance(c, DictConfig) and "_target_" in c]


def build_datamodule(cfg: DictConfig):
    """The DataModule with its feature extractor, front end and (optional) augmentation.

    ``cfg.frontend`` (``conf/frontend``) runs on every split; ``cfg.cpo`` (the papers' CPOs) and
    ``cfg.augment.wave`` / ``cfg.augment.spec`` (``conf/augment``) on training batches only.
    """
    features = instantiate(cfg.features)
    augment = None
    if cfg.get("cpo") and cfg.cpo.get("ops"):
        augment = instantiate(cfg.cpo)
    aug = cfg.get("augment") or {}
    optional = {name: instantiate(node) if node else None
                for name, node in (("frontend", cfg.get("frontend")), ("wave_augment", aug.get("wave")),
                                   ("feature_augment", aug.get("spec")))}
    return instantiate(cfg.data, features=features, augment=augment, **optional)


def build_model(cfg: DictConfig, datamodule) -> L.LightningModule:
    """Instantiate ``cfg.model`` after filling ``num_classes`` from the prepared data."""
    with open_dict(cfg):
        if "num_classes" in cfg.model.keys():
            cfg.model.num_classes = datamodule.num_classes
    model = instantiate(cfg.model)
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    return model


def train(cfg: DictConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")

    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    model = build_model(cfg, dm)
    callbacks = _instantiate_group(cfg.get("callbacks"))
    loggers = _instantiate_group(cfg.get("logger"))
    if not loggers:  # LearningRateMonitor refuses to run without a logger
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    log.info("data: %d classes, %s", dm.num_classes, {k: len(v) for k, v in dm.datasets.items()})
    trainer.fit(model=model, datamodule=dm, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    ckpt_cb = trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb is not None else ""
    if best:
        Path(best).with_suffix(".yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        best_score = ckpt_cb.best_model_score
        if best_score is not None:
            metrics[f"best/{ckpt_cb.monitor}"] = float(best_score)
    if cfg.get("test") and len(dm.datasets.get("test", [])) > 0:
        trainer.test(model=model, datamodule=dm, ckpt_path="best" if best else None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    summary = {
        "experiment": cfg.get("experiment_name") or cfg.get("task_name"),
        "metrics": metrics,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "wall_time_s": round(time.perf_counter() - t0, 2),
        "best_checkpoint": best,
        "hash_bits": OmegaConf.select(cfg, "model.hash_bits"),
        "output_dir": str(out_dir),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("best checkpoint: %s", best or "(none: checkpointing disabled)")
    print(f"[speechret] run directory: {out_dir}")
    print(f"[speechret] best checkpoint: {best or '(none)'}")
    shown = {k: round(v, 4) for k, v in metrics.items() if k.split("/")[-1] in {"map", "acc", "per", "loss"}}
    print(f"[speechret] metrics: {shown}")
    return summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """``speechret train`` / ``python train.py``: :func:`train`; returns ``optimized_metric`` (for
    sweepers such as Optuna)."""
    summary = train(cfg)
    metric = cfg.get("optimized_metric")
    return summary["metrics"].get(metric) if metric else None
