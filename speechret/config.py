"""Where speechret's Hydra configs live, what the project root is, and the resolvers its configs use.

* :data:`CONF_DIR` -- the config directory every command composes from: ``speechret/conf``, a
  symbolic link to the repository's top-level ``conf/`` in a checkout, and the real directory in an
  installed wheel (setuptools follows the link when it builds one; ``[tool.setuptools.package-data]``
  in ``pyproject.toml``). The apps pass it to ``@hydra.main`` as an absolute ``config_path``
  (Hydra 1.3 adds an absolute path to the search path as it is).
* :func:`project_root` -- ``paths.root_dir`` (``conf/paths/default.yaml``), under which data, logs and
  libraries go by default: ``$SPEECHRET_ROOT``, else ``$PROJECT_ROOT`` (the variable
  lightning-hydra-template uses), else the checkout that holds the imported package (the folder with
  ``pyproject.toml`` and ``conf/``), else (an installed wheel) the folder the command was started in.
* OmegaConf resolvers (registered on ``import speechret``, :func:`register_resolvers`):
  ``${speechret_root:}`` (:func:`project_root`), ``${speechret_if:cond,a,b}`` (``a`` when ``cond``
  is true, else ``b``; ``conf/search.yaml`` uses it for ``save_run``) and
  ``${speechret_config_groups:}`` (the config groups of the running command with their options, for
  ``--help``: ``conf/hydra/default.yaml``, ``hydra.help.template``).
* :func:`refuse_renamed_keys` -- a clear error for a parameter that was renamed (``ckpt=`` is
  ``ckpt_path=`` in every command since issue 15).
* :func:`upgrade_run_config` -- the run config stored in an older checkpoint, its renamed keys moved
  to their new names (:data:`RENAMED_RUN_KEYS`), so the checkpoint still loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict

from speechret.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
#: the Hydra config directory (``speechret/conf``: a link to ``conf/`` in a checkout)
CONF_DIR = PACKAGE_DIR / "conf"
#: environment variables naming the project root, in order of precedence
ROOT_ENV_VARS = ("SPEECHRET_ROOT", "PROJECT_ROOT")
#: parameters that were renamed: old key -> new key (the old key stays in the configs as ``null``
#: so that passing it reaches :func:`refuse_renamed_keys` instead of a generic Hydra error)
RENAMED_KEYS = {"ckpt": "ckpt_path"}
#: keys of the run config (stored in every checkpoint) that were renamed: old dotted key -> new one.
#: ``model.net.mixstyle(_after)``: ResNetHashNet's stage hook, named for MixStyle alone in the
#: checkpoints of 2026-12-06 before it took InstanceNorm too (``style`` / ``style_after``).
RENAMED_RUN_KEYS = {"model.net.mixstyle": "model.net.style", "model.net.mixstyle_after": "model.net.style_after"}


def conf_dir() -> Path:
    """The config directory (:data:`CONF_DIR`); a clear error when it is missing (a checkout on a
    file system without symbolic links, or a broken install)."""
    if not (CONF_DIR / "train.yaml").is_file():
        raise ConfigError(f"speechret's configs are missing: {CONF_DIR} holds no train.yaml (in a checkout "
                          f"speechret/conf is a symbolic link to ../conf; an installed wheel ships them)")
    return CONF_DIR


def checkout_root() -> Path | None:
    """The checkout holding the imported package (the folder with ``pyproject.toml`` and ``conf/``),
    or ``None`` for an installed wheel."""
    top = PACKAGE_DIR.parent
    return top if (top / "pyproject.toml").is_file() and (top / "conf").is_dir() else None


def project_root() -> Path:
    """``paths.root_dir``: ``$SPEECHRET_ROOT``, else ``$PROJECT_ROOT``, else the checkout holding the
    imported package, else the folder the command started in (Hydra's ``runtime.cwd`` when a Hydra
    job is running, so ``hydra.job.chdir=true`` does not move it)."""
    for var in ROOT_ENV_VARS:
        value = os.environ.get(var)
        if value:
            return Path(value).expanduser().absolute()
    checkout = checkout_root()
    if checkout is not None:
        return checkout
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return Path(HydraConfig.get().runtime.cwd)
    except Exception:  # noqa: BLE001 - no Hydra run: the process's folder
        pass
    return Path.cwd()


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no", ""):
            raise ConfigError(f"speechret_if: expected true or false, not {value!r}")
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _if(cond: Any, if_true: Any, if_false: Any) -> Any:
    return if_true if _truthy(cond) else if_false


def config_groups_help() -> str:
    """The config groups that the running command's primary config uses (the groups of its
    defaults tree, ``hydra.runtime.choices``, Hydra's own left out; ``group@package`` where the
    config mounts a group elsewhere), one line each with its options and the current choice.
    Hydra's own ``$APP_CONFIG_GROUPS`` lists every group of the config directory instead."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    try:
        choices = HydraConfig.get().runtime.choices
        loader = GlobalHydra.instance().config_loader()
    except Exception:  # noqa: BLE001 - not inside a Hydra run (e.g. --cfg hydra --resolve)
        return "(run with --help to list the config groups)"
    lines = []
    for key in sorted(str(k) for k in choices if k != "hydra" and not str(k).startswith("hydra/")):
        chosen = choices[key]
        options = ", ".join(sorted(loader.get_group_options(key.split("@")[0])))
        lines.append(f"{key}: {options}    (now: {'null' if chosen is None else chosen})")
    return "\n".join(lines)


def register_resolvers() -> None:
    """Register ``speechret_root``, ``speechret_if`` and ``speechret_config_groups`` (idempotent)."""
    for name, fn in (("speechret_root", lambda: str(project_root())), ("speechret_if", _if),
                     ("speechret_config_groups", config_groups_help)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def refuse_renamed_keys(cfg: Any) -> None:
    """A :class:`ConfigError` when ``cfg`` sets a renamed parameter (e.g. ``ckpt=``), naming the new
    one."""
    for old, new in RENAMED_KEYS.items():
        if cfg.get(old) is not None:
            raise ConfigError(f"{old}= was renamed {new}= (the same name in train, index, search and evaluate): "
                              f"pass {new}={cfg.get(old)}")


def upgrade_run_config(cfg: Any) -> Any:
    """Move the keys of :data:`RENAMED_RUN_KEYS` in a checkpoint's stored run config (an OmegaConf
    ``DictConfig``) to their new names, in place, and return it.  A config that holds both an old
    key and its new one is refused (:class:`ConfigError`): which one the run used is unknown."""
    for old, new in RENAMED_RUN_KEYS.items():
        parent, _, leaf = old.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if node is None or leaf not in node:
            continue
        new_leaf = new.rpartition(".")[2]
        if new_leaf in node:
            raise ConfigError(f"run config holds both {old} and {new} (renamed): cannot tell which the run used")
        value = node[leaf]
        with open_dict(node):
            node[new_leaf] = value
            del node[leaf]
    return cfg
