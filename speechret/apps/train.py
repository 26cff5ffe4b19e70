"""Training pipeline behind ``train.py`` (lightning-hydra-template style).

``train(cfg)``: seed → features, CPO augmentation, DataModule → model (``num_classes`` filled in
from the data) → callbacks, loggers, Trainer → fit → test on the best checkpoint → write
``summary.json`` (metrics, epochs, wall time, checkpoint) and ``config.yaml`` (resolved) into the
run directory, and copy the config next to the best checkpoint.  The resolved config is also
stored inside every checkpoint, which is all :class:`speechret.hashing.hasher.Hasher` needs.

A run records itself (:mod:`speechret.utils.run_records`): the resolved config is printed as a
tree at the start (``print_config: false`` turns it off) and logged as hyperparameters to every
logger (CSV / TensorBoard ``hparams.yaml``, wandb run config), key material excluded; the
summary lists the size of every checkpoint saved.  Under DDP only rank 0 prints and writes files,
and the job is handed to the processes Lightning starts (:mod:`speechret.utils.ddp`).
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
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from speechret.config import CONF_DIR
from speechret.utils import ddp
from speechret.utils.run_records import checkpoint_sizes, log_hyperparameters, print_config_tree

log = logging.getLogger(__name__)

#: top-level ``train.py`` calls this before ``@hydra.main`` parses ``sys.argv``: a DDP child
#: process started by Lightning runs its parent's job, not the parent's command line (``-m``)
relaunch_as_ddp_child = ddp.relaunch_as_ddp_child


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger group that has a ``_target_``."""
    if not group:
        return []
    return [instantiate(c) for c in group.values() if isinstance(c, DictConfig) and "_target_" in c]


def build_datamodule(cfg: DictConfig):
    """The DataModule with its feature extractor, front end and (optional) augmentation.

    ``cfg.frontend`` (``conf/frontend``) runs on every split; ``cfg.cpo`` (the papers' CPOs) and
    ``cfg.augment.wave`` / ``spec`` / ``mix`` / ``concat`` / ``repeat`` (``conf/augment``) on training
    batches only.
    """
    features = instantiate(cfg.features)
    augment = None
    if cfg.get("cpo") and cfg.cpo.get("ops"):
        augment = instantiate(cfg.cpo)
    aug = cfg.get("augment") or {}
    optional = {name: instantiate(node) if node else None
                for name, node in (("frontend", cfg.get("frontend")), ("wave_augment", aug.get("wave")),
                                   ("feature_augment", aug.get("spec")), ("mix_augment", aug.get("mix")),
                                   ("concat_augment", aug.get("concat")), ("repeat_augment", aug.get("repeat")))}
    return instantiate(cfg.data, features=features, augment=augment, **optional)


def build_model(cfg: DictConfig, datamodule) -> L.LightningModule:
    """Instantiate ``cfg.model`` after filling ``num_classes`` from the prepared data."""
    with open_dict(cfg):
        if "num_classes" in cfg.model.keys():
            cfg.model.num_classes = datamodule.num_classes
    model = instantiate(cfg.model)
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    return model


def resolve_sync_batchnorm(trainer_cfg: DictConfig, model: torch.nn.Module) -> DictConfig:
    """``trainer.sync_batchnorm: auto`` (``conf/trainer/ddp.yaml``) → a bool: SyncBatchNorm only
    where it means something and runs -- the model has BatchNorm layers, the run uses CUDA
    (torch's SyncBatchNorm refuses CPU tensors) and more than one process.  Other values pass."""
    if str(trainer_cfg.get("sync_batchnorm", False)) != "auto":
        return trainer_cfg
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    accel = str(trainer_cfg.get("accelerator", "auto"))
    cuda = accel in {"gpu", "cuda"} or (accel == "auto" and torch.cuda.is_available())
    devices = trainer_cfg.get("devices", 1)
    if str(devices) in {"auto", "-1"}:
        n = torch.cuda.device_count() if cuda else 1
    elif isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        n = len(devices)
    else:
        n = int(str(devices).count(",") + 1 if "," in str(devices) else devices)
    n *= int(trainer_cfg.get("num_nodes", 1) or 1)
    out = trainer_cfg.copy()
    with open_dict(out):
        out.sync_batchnorm = bool(has_bn and cuda and n > 1)
    return out


def best_checkpoint_callback(trainer: L.Trainer) -> ModelCheckpoint | None:
    """The checkpoint callback whose ``best_model_path`` is the run's best checkpoint: the first
    one that monitors a metric, else the first one (``conf/callbacks/model_checkpoint.yaml``
    lists ``model_checkpoint`` before ``last_checkpoint``)."""
    cbs = list(trainer.checkpoint_callbacks)
    return next((c for c in cbs if c.monitor is not None), cbs[0] if cbs else None)


def saved_checkpoints(trainer: L.Trainer) -> list[str]:
    """Every checkpoint file the run's checkpoint callbacks kept (best k and last), once each."""
    paths: list[str] = []
    for cb in trainer.checkpoint_callbacks:
        for p in [cb.best_model_path, *cb.best_k_models, cb.last_model_path]:
            if p and p not in paths:
                paths.append(p)
    return paths


def last_checkpoint(trainer: L.Trainer) -> str:
    """The run's ``last.ckpt`` (``conf/callbacks/model_checkpoint.yaml``'s ``last_checkpoint``), or ''."""
    for cb in trainer.checkpoint_callbacks:
        for p in (cb.last_model_path, cb.best_model_path):
            if p and Path(p).stem.split("-v")[0] == ModelCheckpoint.CHECKPOINT_NAME_LAST:
                return p
    return ""


def train(cfg: DictConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")

    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    model = build_model(cfg, dm)
    if cfg.get("print_config", True):  # after build_model: model.num_classes is known
        print_config_tree(cfg)
    callbacks = _instantiate_group(cfg.get("callbacks"))
    loggers = _instantiate_group(cfg.get("logger"))
    if not loggers:  # LearningRateMonitor refuses to run without a logger
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)]
    trainer: L.Trainer = instantiate(resolve_sync_batchnorm(cfg.trainer, model), callbacks=callbacks,
                                     logger=loggers or False)
    out_dir = Path(cfg.paths.output_dir)
    if trainer.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        log.info("data: %d classes, %s", dm.num_classes, {k: len(v) for k, v in dm.datasets.items()})
    log_hyperparameters(trainer.loggers, cfg, model)
    with ddp.job_scope(str(out_dir)):  # the job, for the DDP processes Lightning may start in fit()
        trainer.fit(model=model, datamodule=dm, ckpt_path=cfg.get("ckpt_path"))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

        ckpt_cb = best_checkpoint_callback(trainer)
        best = ckpt_cb.best_model_path if ckpt_cb is not None else ""
        if best:
            if trainer.is_global_zero:
                Path(best).with_suffix(".yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
            best_score = ckpt_cb.best_model_score
            if best_score is not None:
                metrics[f"best/{ckpt_cb.monitor}"] = float(best_score)
        sizes = checkpoint_sizes(saved_checkpoints(trainer)) if trainer.is_global_zero else {}
        if cfg.get("test") and len(dm.datasets.get("test", [])) > 0:
            trainer.test(model=model, datamodule=dm, ckpt_path=best or None)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})

    summary = {
        "experiment": cfg.get("experiment_name") or cfg.get("task_name"),
        "metrics": metrics,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "wall_time_s": round(time.perf_counter() - t0, 2),
        "best_checkpoint": best,
        "last_checkpoint": last_checkpoint(trainer),
        "checkpoint_mb": sizes,
        "resumed_from": cfg.get("ckpt_path"),
        "hash_bits": OmegaConf.select(cfg, "model.hash_bits"),
        "output_dir": str(out_dir),
        "world_size": trainer.world_size,
        "global_rank": trainer.global_rank,
    }
    if trainer.is_global_zero:
        _report(summary, out_dir, metrics, best)
    return summary


@rank_zero_only
def _report(summary: dict[str, Any], out_dir: Path, metrics: dict[str, float], best: str) -> None:
    """Rank 0: ``summary.json`` and the closing lines (run directory, checkpoints with their size, metrics)."""
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("best checkpoint: %s", best or "(none: no validation metric to choose one by, e.g. data.val_speakers=[], "
             f"or checkpointing disabled; last checkpoint: {summary['last_checkpoint'] or 'none either'})")
    for name, mb in summary["checkpoint_mb"].items():
        log.info("checkpoint %s: %.1f MB", name, mb)
    print(f"[speechret] run directory: {out_dir}")
    print(f"[speechret] best checkpoint: {best or '(none)'}")
    if summary["checkpoint_mb"]:
        print("[speechret] checkpoints: " + ", ".join(f"{n} {mb:.1f} MB" for n, mb in summary["checkpoint_mb"].items()))
    shown = {k: round(v, 4) for k, v in metrics.items() if k.split("/")[-1] in {"map", "acc", "per", "loss"}}
    print(f"[speechret] metrics: {shown}")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    summary = train(cfg)
    metric = cfg.get("optimized_metric")
    return summary["metrics"].get(metric) if metric else None


def main() -> float | None:
    """``speechret train`` / ``python train.py``: :func:`train` under Hydra; returns
    ``optimized_metric`` (for sweepers such as Optuna). A DDP child that Lightning started for an
    exported job first swaps its command line for that one job (:func:`relaunch_as_ddp_child`),
    before Hydra parses it, so a multirun is launched once."""
    relaunch_as_ddp_child()
    return _hydra_main()


if __name__ == "__main__":  # the script DDP children of `speechret train` run (speechret/cli.py)
    main()
