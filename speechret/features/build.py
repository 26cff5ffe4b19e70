"""Construction of a front end from its config: ``build_features`` over Hydra ``_target_`` nodes.

The configs of ``conf/features/*.yaml`` (paper A §4.4 step 1: ``logmel``, ``mfcc``; paper B §IV-E
step 1: ``logmel_image``; paper C §5.1: ``svs``, ``svs_aishell``, ``mfcc_seq``; ``logmel64``) are the
single source of truth: a preset name is that YAML file, loaded and composed here; nothing of
their content is copied into code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra.utils
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from speechret.config import CONF_DIR
from speechret.errors import ConfigError
from speechret.features.base import FeatureExtractor

__all__ = ["FEATURES_CONF_DIR", "build_features", "load_preset", "preset_names"]

#: ``conf/features`` of the repository: one YAML (a Hydra ``_target_`` node) per preset.
FEATURES_CONF_DIR = CONF_DIR / "features"

_NAME = re.compile(r"[A-Za-z0-9_\-]+")


def preset_names() -> list[str]:
    """Names of the presets, i.e. the ``conf/features/<name>.yaml`` files, sorted."""
    return sorted(p.stem for p in FEATURES_CONF_DIR.glob("*.yaml"))


def _preset_path(name: str, key: str) -> Path:
    name = name.strip()
    if _NAME.fullmatch(name):
        for candidate in (name, name.lower()):  # "SVS" finds svs.yaml
            path = FEATURES_CONF_DIR / f"{candidate}.yaml"
            if path.is_file():
                return path
    raise ConfigError(
        f"features {key}={name!r}: no preset {FEATURES_CONF_DIR}/{name}.yaml; known: {preset_names()}"
    )


def _compose(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """The YAML at ``path`` with its Hydra defaults list applied: entries are sibling presets of
    ``conf/features``, merged in order; ``_self_`` (implicitly last, as Hydra >= 1.1) is the file."""
    if path in seen:
        raise ConfigError(f"features preset {path.stem!r}: circular defaults {[p.stem for p in seen]}")
    node = OmegaConf.load(path)
    if not isinstance(node, DictConfig):
        raise ConfigError(f"features preset {path}: expected a mapping, got {type(node).__name__}")
    defaults = node.pop("defaults", None)
    if defaults is None:
        return node
    entries = list(defaults)
    if "_self_" not in entries:
        entries.append("_self_")
    merged = OmegaConf.create()
    for entry in entries:
        if entry == "_self_":
            merged = OmegaConf.merge(merged, node)
        elif isinstance(entry, str):
            merged = OmegaConf.merge(merged, _compose(_preset_path(entry, f"{path.stem}.defaults"), (*seen, path)))
        else:
            raise ConfigError(f"features preset {path.stem!r}: unsupported defaults entry {entry!r}")
    return merged  # type: ignore[return-value]


def load_preset(name: str) -> dict[str, Any]:
    """The config of ``conf/features/<name>.yaml`` (defaults list applied) as a plain dict with a
    ``_target_``; :class:`~speechret.errors.ConfigError` when there is no such file."""
    return _load(name, "preset")


def _load(name: str, key: str) -> dict[str, Any]:
    return OmegaConf.to_container(_compose(_preset_path(name, key)), resolve=True)  # type: ignore[return-value]


def _instantiate(cfg: dict[str, Any]) -> FeatureExtractor:
    target = cfg["_target_"]
    try:
        # _partial_: Hydra resolves the target and the arguments; the constructor then runs here,
        # so its own errors (TypeError for an unknown argument, ValueError for a bad value) surface
        # unwrapped.
        factory = hydra.utils.instantiate(cfg, _partial_=True, _convert_="all")
    except InstantiationException as e:
        raise ConfigError(f"features _target_={target!r}: {e}") from e
    cls = getattr(factory, "func", None)
    if not (isinstance(cls, type) and issubclass(cls, FeatureExtractor)):
        raise ConfigError(f"features _target_={target!r} is not a speechret.features.FeatureExtractor")
    return factory()


def build_features(cfg: str | Mapping[str, Any] | FeatureExtractor, **overrides: Any) -> FeatureExtractor:
    """Build a feature extractor, with keyword ``overrides`` of its constructor arguments, from

    * a mapping or ``DictConfig`` with a Hydra ``_target_`` (a ``conf/features`` node, or a saved
      :attr:`FeatureExtractor.config`), instantiated with :func:`hydra.utils.instantiate`;
    * a preset name (``"logmel"``, ``"mfcc"``, ``"logmel_image"``, ``"svs"``, ``"svs_aishell"``,
      ``"mfcc_seq"``, ...): ``conf/features/<name>.yaml`` (:func:`load_preset`), also as the
      ``name`` key of a mapping whose other keys override the file's;
    * an extractor: returned unchanged, or rebuilt from its ``config`` when overrides are given.

    A mapping with neither ``_target_`` nor a known ``name``, or a ``_target_`` that is not a
    :class:`FeatureExtractor`, raises :class:`~speechret.errors.ConfigError` (a ``ValueError``);
    an unknown constructor argument raises ``TypeError``.
    """
    if isinstance(cfg, FeatureExtractor):
        return build_features(cfg.config, **overrides) if overrides else cfg
    if isinstance(cfg, str):
        node = load_preset(cfg)
    elif isinstance(cfg, DictConfig):
        node = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    elif isinstance(cfg, Mapping):
        node = dict(cfg)
    else:
        raise ConfigError(
            f"features: expected a preset name, a mapping with '_target_' or a FeatureExtractor, "
            f"not {type(cfg).__name__}"
        )
    if "_target_" not in node:
        if "name" not in node:
            raise ConfigError(
                f"features config needs '_target_' or 'name' (a conf/features preset); got keys {sorted(node)}"
            )
        name = node.pop("name")
        node = {**_load(str(name), "name"), **node}
    node.update(overrides)
    return _instantiate(node)
