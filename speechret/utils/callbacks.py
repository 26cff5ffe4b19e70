"""Lightning callbacks of the run bookkeeping."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.callbacks import Callback


class RNGStateCheckpoint(Callback):
    """Stores the global random generators (torch, CUDA, numpy, Python ``random``) in every full
    checkpoint and restores them when a run resumes, so that a resumed run shuffles, drops out
    and augments exactly as the uninterrupted run would have (Lightning saves the loops' progress,
    optimizers and schedulers, but not the generators: a resume re-seeded from ``seed`` drew
    different batches from the first resumed epoch on).

    The training DataLoader's own shuffling generator (``SpeechDataModule`` gives each loader a
    ``torch.Generator`` seeded with ``data.seed``) is saved too.  Lightning builds a resumed run's
    loader anew (a fresh generator: epoch 2 would be shuffled like epoch 0) and creates its
    iterator before any callback hook runs, so the saved state is put into the new loader by
    wrapping the datamodule's ``train_dataloader`` for that one call (``on_load_checkpoint``).

    Uses Lightning's own ``lightning.fabric.utilities.seed._collect_rng_states`` /
    ``_set_rng_states`` (what Fabric's ``seed_everything`` bookkeeping uses).  Under DDP rank 0's
    generators are saved and every rank restores them: ranks seeded alike by ``seed_everything``
    draw alike, which is what Lightning's ``DistributedSampler`` (seeded per epoch) assumes anyway.
    """

    def state_dict(self) -> dict[str, Any]:
        return {"rng": _to_safe(_collect_rng_states(include_cuda=True))}

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        gen = _train_generator(trainer)
        if gen is not None:
            checkpoint["speechret_train_generator"] = gen.get_state()

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        state, dm = checkpoint.get("speechret_train_generator"), getattr(trainer, "datamodule", None)
        if state is None or dm is None or not hasattr(dm, "train_dataloader"):
            return
        build = dm.train_dataloader

        def train_dataloader_once():
            loader = build()
            if getattr(loader, "generator", None) is not None:
                loader.generator.set_state(state)
            dm.train_dataloader = build  # only the loader of the resumed fit
            return loader

        dm.train_dataloader = train_dataloader_once

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        rng = state_dict.get("rng")
        if rng is None:
            return
        rng = _from_safe(rng)
        if not torch.cuda.is_available():
            rng.pop("torch.cuda", None)
        _set_rng_states(rng)


def _to_safe(states: dict[str, Any]) -> dict[str, Any]:
    """The generator states as tensors, numbers and lists only: Lightning 2.6 resumes with
    ``torch.load(weights_only=True)``, which refuses numpy arrays and Python tuples of state."""
    name, keys, pos, has_gauss, gauss = states["numpy"]
    version, py_state, py_gauss = states["python"]
    return {"torch": states["torch"], "torch.cuda": list(states.get("torch.cuda", [])),
            "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                       "gauss": py_gauss}}


def _from_safe(safe: dict[str, Any]) -> dict[str, Any]:
    n, p = safe["numpy"], safe["python"]
    out = {"torch": safe["torch"],
           "numpy": (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]),
           "python": (p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss"])}
    if safe.get("torch.cuda"):
        out["torch.cuda"] = safe["torch.cuda"]
    return out


def _train_generator(trainer: Any) -> torch.Generator | None:
    """The generator of the fit's training DataLoader (None without one or before it exists)."""
    try:
        loader = trainer.fit_loop._combined_loader.flattened[0] if trainer.fit_loop._combined_loader else None
    except (AttributeError, IndexError):
        loader = None
    return getattr(loader, "generator", None)
