"""What a training run records about itself: the resolved config as a tree on the console, the
same config as hyperparameters of every logger, and the size of every checkpoint it saved.

Built on lightning-hydra-template's ``utils.print_config_tree`` (a ``rich.tree.Tree`` of YAML
syntax blocks, one branch per top-level group) and ``utils.log_hyperparameters`` (one
``logger.log_hyperparams(dict)`` per logger).  Differences: the whole resolved config is logged,
flattened to dotted keys (``model.hash_bits``) so that the CSV and TensorBoard
loggers' ``hparams.yaml`` and wandb's run config all show the same keys; and key material is
never logged (:func:`loggable_config`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from speechret.crypto.keys import is_secret_param

log = logging.getLogger(__name__)

#: subtrees never logged nor printed, whatever they hold (key files and environment-variable
#: names are not secrets, but nothing under them is needed to reproduce a training run)
EXCLUDED_SUBTREES = ("cipher.key_material",)
#: what the config tree shows first (the rest follows in config order)
TREE_ORDER = ("data", "features", "model", "callbacks", "logger", "trainer", "paths", "experiment_name", "seed")
REDACTED = "<redacted>"


def _excluded(path: str) -> bool:
    """A dotted path under :data:`EXCLUDED_SUBTREES` or naming a secret
    (:func:`speechret.crypto.keys.is_secret_param`, the rule :class:`~speechret.crypto.keys.SecretGuard`
    refuses configs by)."""
    return any(path == s or path.startswith(s + ".") for s in EXCLUDED_SUBTREES) or is_secret_param(path)


def _scrub(node: Any, prefix: str = "") -> Any:
    """A plain copy of ``node`` without the excluded entries (see :func:`_excluded`)."""
    if isinstance(node, Mapping):
        out = {}
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if not _excluded(path):
                out[str(k)] = _scrub(v, path)
        return out
    if isinstance(node, (list, tuple)):
        return [_scrub(v, prefix) for v in node]
    return node


def loggable_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config as plain containers, without key material: no ``cipher.key_material``
    subtree and no entry whose name says it is a secret (``passphrase``, ``key_hex``, ...)."""
    if isinstance(cfg, DictConfig):
        cfg = _container(cfg, resolve=True)
    return _scrub(cfg)


def _container(cfg: DictConfig, resolve: bool) -> dict[str, Any]:
    """``OmegaConf.to_container``; where an interpolation cannot be resolved yet (e.g. to
    ``model.num_classes: ???`` before the data is read) the config is taken unresolved."""
    if resolve:
        try:
            return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
        except Exception:  # noqa: BLE001 - InterpolationToMissingValueError and friends
            pass
    return OmegaConf.to_container(cfg, resolve=False)


def flatten(tree: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"model": {"hash_bits": 64}}`` → ``{"model.hash_bits": 64}``.  Lists of scalars stay
    lists; lists holding mappings are flattened with their index (``callbacks.x.0.y``); empty
    mappings become ``None``.  Values that are neither scalars nor lists become ``str``."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key, sep) if v else {key: None})
        elif isinstance(v, (list, tuple)) and any(isinstance(x, (Mapping, list, tuple)) for x in v):
            out.update(flatten({str(i): x for i, x in enumerate(v)}, key, sep))
        elif v is None or isinstance(v, (bool, int, float, str)) or isinstance(v, (list, tuple)):
            out[key] = list(v) if isinstance(v, tuple) else v
        else:
            out[key] = str(v)
    return out


def hyperparameters(cfg: DictConfig | Mapping[str, Any], model: Any = None) -> dict[str, Any]:
    """The flat dict every logger receives: the loggable resolved config (:func:`loggable_config`)
    plus, as the template does, the model's parameter counts (``model/params/total``, ...)."""
    hp = flatten(loggable_config(cfg))
    if model is not None and hasattr(model, "parameters"):
        params = list(model.parameters())
        hp["model/params/total"] = sum(p.numel() for p in params)
        hp["model/params/trainable"] = sum(p.numel() for p in params if p.requires_grad)
        hp["model/params/non_trainable"] = hp["model/params/total"] - hp["model/params/trainable"]
    return hp


@rank_zero_only
def log_hyperparameters(loggers: Iterable[Any], cfg: DictConfig | Mapping[str, Any],
                        model: Any = None) -> dict[str, Any]:
    """``logger.log_hyperparams(hyperparameters(cfg, model))`` for every logger (rank 0 only, like
    every Lightning logger call).  CSV and TensorBoard then write the keys into their
    ``hparams.yaml``, wandb into the run's config.  Returns what was logged."""
    hp = hyperparameters(cfg, model)
    for logger in loggers:
        logger.log_hyperparams(hp)
    return hp


@rank_zero_only
def print_config_tree(cfg: DictConfig, order: Sequence[str] = TREE_ORDER, resolve: bool = True,
                      save_to: str | Path | None = None) -> None:
    """Print the resolved config as a ``rich`` tree (rank 0 only): the groups of ``order`` first,
    then the others, each as a YAML block.  Key material is left out, as in the logged
    hyperparameters.  ``save_to``: also write the tree as plain text there."""
    import rich
    import rich.syntax
    import rich.tree
    from rich.console import Console

    data = loggable_config(_container(cfg, resolve) if isinstance(cfg, DictConfig) else cfg)
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    fields = [f for f in order if f in data] + [f for f in data if f not in order]
    for field in fields:
        branch = tree.add(field, style="bold", guide_style="dim")
        value = data[field]
        text = OmegaConf.to_yaml(OmegaConf.create(value)) if isinstance(value, (dict, list)) else str(value)
        branch.add(rich.syntax.Syntax(text.rstrip("\n") or "null", "yaml", theme="ansi_dark"))
    rich.print(tree)
    if save_to is not None:
        with Path(save_to).open("w") as f:
            Console(file=f, width=120, color_system=None).print(tree)


def checkpoint_sizes(paths: Iterable[str | Path]) -> dict[str, float]:
    """MB (10^6 bytes) of each existing checkpoint file, by file name (``last.ckpt`` → 158.2)."""
    out = {}
    for p in paths:
        p = Path(p)
        if p.is_file():
            out[p.name] = round(p.stat().st_size / 1e6, 3)
    return out
