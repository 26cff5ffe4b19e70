"""LightningModules: training logic around the architectures of :mod:`speechret.models.components`.

* :class:`ClassificationHashModule` — papers A and B: a content classifier whose hash layer gives the
  code.  ``loss="bce"`` is paper A §4.3 (Keras ``binary_crossentropy`` on the softmax output
  against one-hot targets, trained with SGD); ``loss="ce"`` is paper B §IV-D (softmax
  cross-entropy).
* :class:`CTCHashModule` — paper C §4.2: per-frame scores over the 27-class pronunciation model,
  trained with CTC; greedy decoding gives the pronunciation error rate (PER).

Both share :class:`HashingModule`: the batch's ``features`` go through the network, the output goes
through :func:`speechret.hashing.codes_from_output` — the one function indexing and search call
too — and every validation epoch logs ``val/loss``, ``val/acc`` or ``val/per`` and ``val/map``, the
retrieval mAP (paper B eq. 17–18) of the validation set against itself (each utterance queries
all others; relevant = same content label).

The resolved run config is stored in every checkpoint (``checkpoint["speechret"]``) so that
:class:`speechret.hasher.Hasher` can rebuild exactly the features, network and hash method.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechret.evaluate.metrics import edit_distance, label_relevance, mean_average_precision
from speechret.hashing import codes_from_output
from speechret.search.sliding import pairwise_sliding_distance

log = logging.getLogger(__name__)


def fixed_code_distances(method: str, q: np.ndarray, db: np.ndarray, n_classes: int = 0) -> np.ndarray:
    """(Q, N) normalized Hamming distances (BER) between fixed-length bit codes (bool arrays).

    Paper B's code is ``h1 ‖ h2`` (category one-hot, then K semantic bits): its distance is the
    "two-stage" order of §IV-F — BER over ``h2``, plus 1 when the categories differ, so items of
    the query's predicted category always rank first.
    """
    qf = torch.from_numpy(np.asarray(q, dtype=np.float32))
    df = torch.from_numpy(np.asarray(db, dtype=np.float32))
    if method == "paper_b" and n_classes > 0:
        cat_q, cat_d = qf[:, :n_classes].argmax(1), df[:, :n_classes].argmax(1)
        qf, df = qf[:, n_classes:], df[:, n_classes:]
        ber = (qf @ (1 - df).T + (1 - qf) @ df.T) / qf.shape[1]
        return (ber + (cat_q[:, None] != cat_d[None, :]).float()).numpy()
    return ((qf @ (1 - df).T + (1 - qf) @ df.T) / qf.shape[1]).numpy()


def code_distances(method: str, q: Any, db: Any, n_classes: int = 0) -> np.ndarray:
    """Distance matrix for any method: fixed codes by BER, paper C sequences by sliding matching."""
    if method == "paper_c":
        return pairwise_sliding_distance(q, db, symmetric=True)
    return fixed_code_distances(method, q, db, n_classes)


class HashingModule(L.LightningModule):
    """Shared training/validation logic of every deep-hashing model.

    Args:
        net: the architecture (``nn.Module`` returning a ``ModelOutput``).
        hash_method: ``paper_a`` | ``paper_b`` | ``paper_c`` (see :mod:`speechret.hashing`).
        optimizer: a partial optimizer (Hydra ``_partial_: true``) taking the parameters.
        scheduler: optional partial LR scheduler taking the optimizer.
        scheduler_monitor: metric a ``ReduceLROnPlateau`` watches.
        compile: ``torch.compile`` the network in :meth:`setup` (GPU training).
    """

    def __init__(
        self,
        net: nn.Module,
        hash_method: str,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/loss",
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.hash_method = hash_method
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.run_config: dict[str, Any] | None = None
        self._val: list[tuple[Any, np.ndarray]] = []

    # ------------------------------------------------------------ shared path
    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None):
        return self.net(features, lengths)

    def codes(self, out) -> Any:
        """Codes of a batch's network output (the one path shared with indexing and search)."""
        return codes_from_output(self.hash_method, out)

    def compute_loss(self, out, batch: dict[str, Any]) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must define compute_loss(out, batch)")

    def step_metrics(self, out, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {}

    @property
    def n_classes(self) -> int:
        return 0

    # ------------------------------------------------------------ loops
    def _shared_step(self, batch: dict[str, Any], stage: str):
        out = self(batch["features"], batch.get("feature_lengths"))
        loss = self.compute_loss(out, batch)
        bs = batch["features"].shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, sync_dist=stage != "train")
        for name, value in self.step_metrics(out, batch).items():
            self.log(f"{stage}/{name}", value, prog_bar=True, batch_size=bs, sync_dist=stage != "train")
        return out, loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")[1]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out, _ = self._shared_step(batch, "val")
        self._val.append((self.codes(out), batch["label"].detach().cpu().numpy()))

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out, _ = self._shared_step(batch, "test")
        self._val.append((self.codes(out), batch["label"].detach().cpu().numpy()))

    def on_validation_epoch_start(self) -> None:
        self._val = []

    on_test_epoch_start = on_validation_epoch_start

    def _log_map(self, stage: str) -> None:
        if not self._val:
            return
        labels = np.concatenate([lab for _, lab in self._val])
        if self.hash_method == "paper_c":
            codes = [c for batch_codes, _ in self._val for c in batch_codes]
        else:
            codes = np.concatenate([np.asarray(c) for c, _ in self._val])
        self._val = []
        if len(labels) < 2 or (labels < 0).all():
            return
        dist = code_distances(self.hash_method, codes, codes, self.n_classes)
        rel = label_relevance(labels, labels)
        res = mean_average_precision(dist, rel, exclude=np.eye(len(labels), dtype=bool))
        if res["n_queries"] > 0:
            self.log(f"{stage}/map", res["map"], prog_bar=True, sync_dist=True)
        else:
            log.warning("%s/map not logged: no %s item shares its content label with another", stage, stage)

    def on_validation_epoch_end(self) -> None:
        self._log_map("val")

    def on_test_epoch_end(self) -> None:
        self._log_map("test")

    # ------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        if self.hparams.compile and stage == "fit":
            self.net = torch.compile(self.net)

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        else:
            opt = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return opt
        sched = self.scheduler_factory(optimizer=opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": self.hparams.scheduler_monitor,
                                                   "interval": "epoch", "frequency": 1}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint["speechret"] = self.run_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.run_config = checkpoint.get("speechret", self.run_config)


class ClassificationHashModule(HashingModule):
    """Papers A and B: content classification with a hash layer.

    ``loss="bce"`` (paper A §4.3) is Keras' ``binary_crossentropy`` on the softmax output against
    one-hot targets — every class is a binary decision, probabilities clipped to [1e-7, 1-1e-7] as
    Keras does; ``loss="ce"`` (paper B §IV-D, eq. 13) is softmax cross-entropy.  ``hash_bits`` is
    the hash-layer width the net was built with (recorded for sweeps; the net config interpolates it).
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        hash_bits: int | None = None,
        hash_method: str = "paper_a",
        loss: str = "ce",
        label_smoothing: float = 0.0,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/loss",
        compile: bool = False,
    ) -> None:
        if loss not in {"ce", "bce"}:
            raise ValueError(f"loss must be 'ce' (paper B) or 'bce' (paper A), not {loss!r}")
        super().__init__(net, hash_method, optimizer, scheduler, scheduler_monitor, compile)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)

    @property
    def n_classes(self) -> int:
        return int(self.hparams.num_classes)

    def compute_loss(self, out, batch: dict[str, Any]) -> torch.Tensor:
        logits, target = out.logits.float(), batch["label"]
        if self.hparams.loss == "ce":
            return F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
        prob = logits.softmax(-1).clamp(1e-7, 1 - 1e-7)
        onehot = F.one_hot(target, logits.shape[-1]).to(prob.dtype)
        return F.binary_cross_entropy(prob, onehot)

    def step_metrics(self, out, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"acc": (out.logits.argmax(-1) == batch["label"]).float().mean()}


def greedy_ctc_decode(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int) -> list[list[int]]:
    """Best path: argmax per frame, collapse repeats, drop blanks."""
    best = log_probs.argmax(-1).cpu().numpy()
    out = []
    for seq, n in zip(best, lengths.cpu().numpy()):
        s = seq[: int(n)]
        keep = np.ones(len(s), dtype=bool)
        keep[1:] = s[1:] != s[:-1]
        out.append([int(x) for x in s[keep] if x != blank])
    return out


class CTCHashModule(HashingModule):
    """Paper C §4.2: per-frame pronunciation scores trained with CTC (eq. 8).

    ``blank`` is the CTC blank index.  Default ``blank=26``: the 27th class "other" (silence,
    breath, noise) *is* the blank, as in the paper's TensorFlow setup where ``ctc_loss`` takes the
    last of the 27 softmax classes as blank; then the network has 27 outputs, frames whose argmax
    is "other" are exactly the frames §4.4 step 2 drops, and targets never contain "other" (any are
    removed).  ``blank=27`` with 28 outputs keeps "other" as a learnable label beside a separate
    blank.  The pronunciation error rate (PER) is the edit distance of the greedy decoding to the
    targets over the target length.
    """

    def __init__(
        self,
        net: nn.Module,
        blank: int = 26,
        other_index: int = 26,
        hash_method: str = "paper_c",
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/loss",
        compile: bool = False,
    ) -> None:
        super().__init__(net, hash_method, optimizer, scheduler, scheduler_monitor, compile)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)

    def _targets(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        targets, lengths = batch["targets"], batch["target_lengths"]
        if self.hparams.blank == self.hparams.other_index:
            keep = (targets >= 0) & (targets != self.hparams.blank)
            lengths = keep.sum(1)
            flat = targets[keep]
        else:
            flat = targets[targets >= 0]
        return flat, lengths

    def compute_loss(self, out, batch: dict[str, Any]) -> torch.Tensor:
        log_probs = out.logits.float().log_softmax(-1)
        flat, tlen = self._targets(batch)
        return F.ctc_loss(log_probs.transpose(0, 1), flat, out.lengths, tlen, blank=self.hparams.blank,
                          reduction="mean", zero_infinity=True)

    def decode(self, out) -> list[list[int]]:
        return greedy_ctc_decode(out.logits.float(), out.lengths, self.hparams.blank)

    def step_metrics(self, out, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.training:
            return {}
        hyps = self.decode(out)
        flat, tlen = self._targets(batch)
        refs = torch.split(flat.cpu(), tlen.cpu().tolist())
        errors = sum(edit_distance(h, r.tolist()) for h, r in zip(hyps, refs))
        return {"per": torch.tensor(errors / max(1, int(tlen.sum())), dtype=torch.float32)}
