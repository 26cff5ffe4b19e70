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
all others; relevant = same content label).  Under DDP the codes of every rank are gathered
first, so ``val/map`` (and ``test/map``) is the mAP of the whole set, the same for any number of
processes (:func:`speechret.models.epoch_codes.gather_epoch_codes`).

The resolved run config is stored in every checkpoint (``checkpoint["speechret"]``) so that
:class:`speechret.hashing.hasher.Hasher` can rebuild exactly the features, network and hash method.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import Container, OmegaConf
from torch import nn

from speechret.errors import ConfigError
from speechret.metrics import cross_speaker_relevance, edit_distance, label_relevance, mean_average_precision
from speechret.hashing import HashMethod, get_hash_method, hash_method_class
from speechret.models.epoch_codes import gather_epoch_codes

from .ctc import (  # noqa: F401  (re-exported: the decoders lived here before)
    CTC_DECODERS,
    check_ctc_frames,
    compact_targets,
    ctc_decode,
    ctc_prefix_beam_search,
    greedy_ctc_decode,
    init_blank_bias,
)

log = logging.getLogger(__name__)


class HashingModule(L.LightningModule):
    """Shared training/validation logic of every deep-hashing model.

    Args:
        net: the architecture (``nn.Module`` returning a ``ModelOutput``).
        hash_method: the name of a :class:`speechret.hashing.HashMethod` (one file per method in
            :mod:`speechret.hashing.methods`); :attr:`hashing` is the object.
        optimizer: a partial optimizer (Hydra ``_partial_: true``) taking the parameters.
        scheduler: optional partial LR scheduler taking the optimizer. A scheduler whose length
            is a number of steps (``OneCycleLR``'s ``total_steps``) gets it from the trainer
            (``estimated_stepping_batches``) when the config leaves it out.
        scheduler_monitor: metric a ``ReduceLROnPlateau`` watches.
        compile: ``torch.compile`` the network in :meth:`setup` (in place; a net's own
            ``compile_parts()`` when it has one, as paper C's SVS models do).
        scheduler_interval: ``epoch`` or ``step`` (per-batch schedules such as one-cycle).
        hash_options: the hash method's code-construction options (its
            :attr:`~speechret.hashing.HashMethod.options`, e.g. paper C's ``binarize``); an option
            the method does not take is a :class:`~speechret.errors.ConfigError`.
        sharpness: optional partial wrapper taking the built optimizer and this module
            (``conf/sharpness``: :class:`speechret.models.sam.SAM`, sharpness-aware minimisation,
            Foret et al. ICLR 2021); ``None`` (``sharpness=none``) steps the optimizer as built.

    A module whose loss weighs mixed items (``conf/augment`` ``mix``) sets :attr:`mixes_targets`;
    any other refuses a mixed batch, rather than train on superposed audio with one item's target.
    """

    mixes_targets: bool = False

    def __init__(
        self,
        net: nn.Module,
        hash_method: str | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/loss",
        compile: bool = False,
        scheduler_interval: str = "epoch",
        hash_options: Mapping[str, Any] | None = None,
        sharpness: Callable[..., torch.optim.Optimizer] | None = None,
    ) -> None:
        if scheduler_interval not in {"epoch", "step"}:
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "hash_objective", "sharpness"],
                                  logger=False)
        self.net = net
        hash_method = hash_method or getattr(net, "hash_method", None)
        if hash_method is None:
            raise ValueError(f"{type(self).__name__}: give hash_method, or a net that declares its own "
                             f"(`hash_method` class attribute); {type(net).__name__} does not")
        self.hash_method = hash_method
        self.hparams.hash_method = hash_method
        self.hash_options = hash_method_class(hash_method).check_options(hash_options)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.sharpness_factory = sharpness
        self.run_config: dict[str, Any] | None = None
        self._val: list[tuple[Any, ...]] = []

    # ------------------------------------------------------------ shared path
    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None):
        return self.net(features, lengths)

    @functools.cached_property
    def hashing(self) -> HashMethod:
        """The :class:`~speechret.hashing.HashMethod` that turns outputs into codes and compares them."""
        return get_hash_method(self.hash_method, n_classes=self.n_classes, **self.hash_options)

    def codes(self, out) -> Any:
        """Codes of a batch's network output (the one path shared with indexing and search)."""
        return self.hashing.codes(out)

    def compute_loss(self, out, batch: dict[str, Any]) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must define compute_loss(out, batch)")

    def step_metrics(self, out, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {}

    @property
    def n_classes(self) -> int:
        return 0

    # ------------------------------------------------------------ loops
    def _shared_step(self, batch: dict[str, Any], stage: str):
        if "mix_index" in batch and not self.mixes_targets:
            raise ConfigError(f"augment.mix: {type(self).__name__} has no loss for mixed items (Mixup); "
                              "remove augment.mix or use a classification hash model")
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
        self._collect(out, batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out, _ = self._shared_step(batch, "test")
        self._collect(out, batch)

    def _collect(self, out, batch: dict[str, Any]) -> None:
        """Keep a batch's codes, content labels, dataset indices (``batch["index"]``, see
        :mod:`speechret.data.datamodule`) and speakers (``batch["speakers"]``) for the epoch's mAP."""
        index = batch.get("index")
        speakers = batch.get("speakers")
        self._val.append((self.codes(out), batch["label"].detach().cpu().numpy(),
                          None if index is None else index.detach().cpu().numpy(),
                          None if speakers is None else np.asarray([str(x) for x in speakers])))

    def on_validation_epoch_start(self) -> None:
        self._val = []

    on_test_epoch_start = on_validation_epoch_start

    def epoch_eval_set(self, with_speakers: bool = False) -> tuple[Any, ...]:
        """The epoch's codes and labels over all DDP ranks, each dataset item once (and clears them);
        with ``with_speakers`` also each item's speaker: :func:`~speechret.models.epoch_codes.gather_epoch_codes`."""
        entries, self._val = self._val, []
        return gather_epoch_codes(entries, self.hashing, with_speakers)

    def _log_map(self, stage: str) -> None:
        """Log ``{stage}/map`` over the whole evaluation set (:meth:`epoch_eval_set`), and, when the
        set has at least two speakers, ``{stage}/map_cross_speaker``: the ``cross_speaker``
        protocol's mAP (paper C Tables 1, 2, 5; :class:`speechret.evaluate.protocols.CrossSpeaker`)
        — relevant = same content by *another* speaker, the query's own speaker left out of the
        ranking.  Under a speaker-disjoint split this is the figure a new voice sees, and the one to
        select checkpoints by when queries come from unheard speakers (``val/map`` also rewards
        matching a speaker's own repetitions).

        Every rank computes the same value from the same gathered set, so it is logged on every
        rank (``rank_zero_only=False``: checkpointing and early stopping read it on each rank)
        without ``sync_dist`` — a reduction would have nothing to combine, and averaging per-rank
        shard mAPs was the error this replaces.  Lightning then warns once under DDP that
        epoch-level metrics are usually synced; that advice does not apply here.
        """
        codes, labels, speakers = self.epoch_eval_set(with_speakers=True)
        if len(labels) < 2 or (labels < 0).all():
            return
        dist = self.hashing.ranking_distances(codes, codes)
        rel = label_relevance(labels, labels)
        res = mean_average_precision(dist, rel, exclude=np.eye(len(labels), dtype=bool))
        if res["n_queries"] > 0:
            self.log(f"{stage}/map", res["map"], prog_bar=True, sync_dist=False, rank_zero_only=False)
        else:
            log.warning("%s/map not logged: no %s item shares its content label with another", stage, stage)
        if speakers is not None and len(set(speakers.tolist()) - {""}) >= 2:
            xrel, same_spk, _ = cross_speaker_relevance(labels, labels, speakers, speakers)
            xres = mean_average_precision(dist, xrel, exclude=same_spk)
            if xres["n_queries"] > 0:
                self.log(f"{stage}/map_cross_speaker", xres["map"], sync_dist=False, rank_zero_only=False)

    def on_validation_epoch_end(self) -> None:
        self._log_map("val")

    def on_test_epoch_end(self) -> None:
        self._log_map("test")

    # ------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        strategy = getattr(self._trainer, "strategy", None)
        if (self.hashing.variable_length and getattr(strategy, "_start_method", None) == "fork"
                and getattr(strategy, "world_size", 1) > 1):
            # the sliding distances of variable-length codes run numba's parallel (threaded)
            # kernels, which are not fork-safe: forked DDP workers gave a wrong val/map or hung
            raise RuntimeError(f"{self.hash_method} models cannot train with a forking DDP strategy "
                               "(ddp_fork / ddp_notebook): use trainer.strategy=ddp or ddp_spawn")
        if self.hparams.compile and stage == "fit" and not getattr(self, "_compiled", False):
            # in place (nn.Module.compile), so the checkpoint's state-dict keys do not change; a
            # net with a compile_parts method (paper C's SVS models: variable-length Python loops
            # over frames) compiles the parts with static structure itself
            parts = getattr(self.net, "compile_parts", None)
            self.net.compile() if parts is None else parts()
            self._compiled = True

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The configured optimizer over this module's parameters (Adam at 1e-3 when none is), without
        its schedule: what ``configure_optimizers`` steps, and what a benchmark outside a Trainer times
        (a one-cycle schedule needs the Trainer's step count)."""
        if self.optimizer_factory is None:
            opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        else:
            opt = self.optimizer_factory(params=self.parameters())
        return opt if self.sharpness_factory is None else self.sharpness_factory(optimizer=opt, module=self)

    def configure_optimizers(self):
        accumulate = int(getattr(self._trainer, "accumulate_grad_batches", 1) or 1)
        if self.sharpness_factory is not None and accumulate > 1:
            raise ConfigError(f"model.sharpness (SAM) with trainer.accumulate_grad_batches={accumulate}: its second "
                              "pass would see only the last micro-batch; use 1, or a larger data.batch_size")
        opt = self.build_optimizer()
        if self.scheduler_factory is None:
            return opt
        kwargs: dict[str, Any] = {}
        fn = getattr(self.scheduler_factory, "func", self.scheduler_factory)
        given = getattr(self.scheduler_factory, "keywords", {}) or {}
        if "total_steps" in inspect.signature(fn).parameters and given.get("total_steps") is None:
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        sched = self.scheduler_factory(optimizer=opt, **kwargs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": self.hparams.scheduler_monitor,
                                                   "interval": self.hparams.scheduler_interval, "frequency": 1}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint["speechret"] = self.run_config
        # plain containers only: Lightning reloads a checkpoint with torch.load(weights_only=True)
        # (trainer.test(ckpt_path="best")), which refuses an OmegaConf node (a Hydra-given
        # model.hash_options) among the hyper-parameters
        hp = checkpoint.get(self.CHECKPOINT_HYPER_PARAMS_KEY)
        if isinstance(hp, dict):
            checkpoint[self.CHECKPOINT_HYPER_PARAMS_KEY] = {
                k: OmegaConf.to_container(v, resolve=True) if isinstance(v, Container) else v for k, v in hp.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.run_config = checkpoint.get("speechret", self.run_config)


class ClassificationHashModule(HashingModule):
    """Papers A and B: content classification with a hash layer.

    ``loss="bce"`` (paper A §4.3) is Keras' ``binary_crossentropy`` on the softmax output against
    one-hot targets — every class is a binary decision, probabilities clipped to [1e-7, 1-1e-7] as
    Keras does; ``loss="ce"`` (paper B §IV-D, eq. 13) is softmax cross-entropy.
    ``label_smoothing`` ε (0 in the papers; ``recipe=speechret`` sets 0.1) replaces either loss's
    one-hot target by ``(1 − ε) one-hot + ε / C`` (Szegedy et al., "Rethinking the Inception
    Architecture", CVPR 2016 §7).  ``hash_bits`` is
    the hash-layer width the net was built with (recorded for sweeps; the net config interpolates it).

    ``hash_objective`` (optional, :class:`speechret.models.losses.HashObjective`: hash centres,
    pairwise likelihood, triplet, bit balance) is added to ``ce_weight`` × the classification loss,
    computed on the hash-layer output ``hash_features``; each of its terms is logged as
    ``train/hash_<name>``. Any experiment can switch it on (``+model.hash_objective=…``); the
    papers' experiments leave it off.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        hash_bits: int | None = None,
        hash_method: str | None = None,
        loss: str = "ce",
        label_smoothing: float = 0.0,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/loss",
        compile: bool = False,
        hash_objective: nn.Module | None = None,
        ce_weight: float = 1.0,
        scheduler_interval: str = "epoch",
        hash_options: Mapping[str, Any] | None = None,
        sharpness: Callable[..., torch.optim.Optimizer] | None = None,
    ) -> None:
        if loss not in {"ce", "bce"}:
            raise ValueError(f"loss must be 'ce' (paper B) or 'bce' (paper A), not {loss!r}")
        super().__init__(net, hash_method, optimizer, scheduler, scheduler_monitor, compile,
                         scheduler_interval=scheduler_interval, hash_options=hash_options, sharpness=sharpness)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "hash_objective", "sharpness"],
                                  logger=False)
        self.hash_objective = hash_objective

    @property
    def n_classes(self) -> int:
        return int(self.hparams.num_classes)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        dm = getattr(self._trainer, "datamodule", None)
        if stage == "fit" and self.hash_objective is not None and hasattr(dm, "split_speakers"):
            # speaker-aware terms (SpeakerAdversaryLoss) index the training speakers, sorted, the
            # same on every rank
            self.hash_objective.set_speakers(dm.split_speakers("train"))

    mixes_targets = True

    def compute_loss(self, out, batch: dict[str, Any]) -> torch.Tensor:
        """Classification loss (+ the hash objective) of the batch's labels.  A batch mixed by
        :class:`speechret.augment.Mixup` (``batch["mix_index"]`` π, ``batch["mix_weight"]`` λ) gets
        ``λ ℓ(y) + (1 − λ) ℓ(y_π)`` (Zhang et al., ICLR 2018, §2), every term of the objective
        with the partner's labels (speakers, pronunciation targets) in the second; the logged
        ``train/hash_*`` terms are those of the items' own labels."""
        target, speakers = batch["label"], batch.get("speakers")
        pron = {k: batch.get(k) for k in ("targets", "target_lengths")}  # for terms that take them
        index = batch.get("mix_index")
        if index is None:
            return self._loss(out, target, speakers, **pron)
        lam = batch["mix_weight"].float()
        partners = None if speakers is None else [speakers[i] for i in index.tolist()]
        partner_pron = {k: None if v is None else v[index] for k, v in pron.items()}
        return lam * self._loss(out, target, speakers, **pron) + (1.0 - lam) * self._loss(
            out, target[index], partners, log_parts=False, **partner_pron)

    def _loss(self, out, target: torch.Tensor, speakers: Any, log_parts: bool = True,
              **inputs: Any) -> torch.Tensor:
        logits = out.logits.float()
        if self.hparams.loss == "ce":
            loss = F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
        else:
            prob = logits.softmax(-1).clamp(1e-7, 1 - 1e-7)
            onehot = F.one_hot(target, logits.shape[-1]).to(prob.dtype)
            ls = self.hparams.label_smoothing  # as cross-entropy's: (1 - ls) one-hot + ls / C
            loss = F.binary_cross_entropy(prob, onehot * (1 - ls) + ls / logits.shape[-1])
        if self.hash_objective is None:
            return loss
        extra, parts = self.hash_objective(out.hash_features, target, speakers, output=out, **inputs)
        if log_parts and self.training and self._trainer is not None:  # logged only inside a Trainer
            for name, value in parts.items():
                self.log(f"train/hash_{name}", value, batch_size=len(target))
        return self.hparams.ce_weight * loss + extra

    def step_metrics(self, out, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"acc": (out.logits.argmax(-1) == batch["label"]).float().mean()}


class CTCHashModule(HashingModule):
    """Paper C §4.2: per-frame pronunciation scores trained with CTC (eq. 8).

    ``blank`` is the CTC blank index; it must be the network's blank output (its ``blank_index``:
    every paper-C network emits the blank last, output ``n_outputs - 1``), else the loss would
    train one class as blank while the codes and decoding treat another as blank — a mismatch is
    a ``ValueError`` naming both.  ``blank=None`` (the configs' choice) takes the network's.
    With ``net.n_outputs=27`` the blank is 26, the 27th class "other" (silence, breath, noise)
    *is* the blank, as in the paper's TensorFlow setup where ``ctc_loss`` takes the last of the 27
    softmax classes as blank; frames whose argmax is "other" are exactly the frames §4.4 step 2
    drops, and targets never contain "other" (any are removed).  With ``net.n_outputs=28`` the
    blank is 27 and "other" stays a learnable label beside it.

    The pronunciation error rate (PER) is the edit distance of the decoding to the targets over
    the target length.  ``decoding="greedy"`` (default: best path, :func:`greedy_ctc_decode` —
    one argmax per frame, cheap enough for every validation batch, and close to the beam result
    on the peaky outputs of a trained CTC model; the PER of earlier runs used it) or
    ``"beam"`` (:func:`ctc_prefix_beam_search` with ``beam_width``, the maximum-likelihood
    labelling of eq. 8).  The decoding feeds the PER and the ASR baseline
    (:class:`speechret.evaluate.baselines.ASRSystem`); the hash codes never use it (§4.4 hashes
    the per-frame scores, not the recognised labels).

    CTC recipe switches (issue 13; :mod:`speechret.models.ctc`; all off / neutral by default):
    ``blank_bias`` or ``blank_prior`` initialise the output layer's blank bias
    (:func:`~speechret.models.ctc.init_blank_bias`); ``frame_check`` (``error`` | ``warn`` |
    ``off``) checks every batch for items with fewer frames ``T`` than CTC needs (``L`` labels +
    ``r`` adjacent repeats) and names them (:func:`~speechret.models.ctc.check_ctc_frames`;
    items under ``frame_warn_ratio`` x (L + r) are logged as tight); ``scheduler_interval`` as in
    :class:`HashingModule` (``step`` for one-cycle). ``label_smoothing`` exists only so that a
    classification recipe (``recipe=speechret``) fails with a clear message: CTC has no one-hot
    target to smooth (use ``recipe=speechret_ctc``).
    """

    def __init__(
        self,
        net: nn.Module,
        blank: int | None = None,
        other_index: int = 26,
        hash_method: str | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/loss",
        compile: bool = False,
        decoding: str = "greedy",
        beam_width: int = 8,
        scheduler_interval: str = "epoch",
        blank_bias: float | None = None,
        blank_prior: float | None = None,
        frame_check: str = "error",
        frame_warn_ratio: float = 1.5,
        label_smoothing: float = 0.0,
        hash_options: Mapping[str, Any] | None = None,
        sharpness: Callable[..., torch.optim.Optimizer] | None = None,
    ) -> None:
        if label_smoothing:
            raise ValueError(f"CTCHashModule: label_smoothing={label_smoothing} does not apply to CTC (no "
                             "one-hot target); recipe=speechret is for the classification models, use "
                             "recipe=speechret_ctc for paper C's CTC experiments")
        if frame_check not in ("error", "warn", "off"):
            raise ValueError(f"frame_check must be error, warn or off, not {frame_check!r}")
        net_blank = getattr(net, "blank_index", None)
        if blank is None:
            if net_blank is None:
                raise ValueError(f"CTCHashModule(blank=None) takes the network's blank_index, but "
                                 f"{type(net).__name__} has none: pass blank=<index of the blank output>")
            blank = int(net_blank)
        elif net_blank is not None and int(blank) != int(net_blank):
            raise ValueError(
                f"CTC blank mismatch: CTCHashModule(blank={blank}) but {type(net).__name__} emits its blank "
                f"at output {net_blank} (n_outputs={getattr(net, 'n_outputs', '?')}, blank last); set "
                f"model.blank={net_blank} (or model.blank=null to take the network's) or "
                f"model.net.n_outputs={int(blank) + 1}")
        if decoding not in CTC_DECODERS:
            raise ValueError(f"decoding must be one of {CTC_DECODERS}, not {decoding!r}")
        if int(beam_width) < 1:
            raise ValueError(f"beam_width must be >= 1, got {beam_width}")
        super().__init__(net, hash_method, optimizer, scheduler, scheduler_monitor, compile,
                         scheduler_interval=scheduler_interval, hash_options=hash_options, sharpness=sharpness)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "sharpness"], logger=False)
        self.hparams.blank = int(blank)  # the resolved index (checkpoints record it)
        if blank_bias is not None or blank_prior is not None:
            out_layer = getattr(net, "out", None)
            if not isinstance(out_layer, nn.Linear):
                raise ValueError(f"blank_bias / blank_prior need the net's output layer `out` (nn.Linear); "
                                 f"{type(net).__name__} has none")
            init_blank_bias(out_layer, int(blank), bias=blank_bias, prior=blank_prior)

    def _targets(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(flat targets, lengths, left-aligned (B, L) targets padded -1)``; the "other" class is
        dropped when it is the blank (:func:`~speechret.models.ctc.compact_targets`)."""
        hp = self.hparams
        drop = hp.blank if hp.blank == hp.other_index else None
        compact, lengths = compact_targets(batch["targets"], drop)
        if drop is None:
            lengths = batch["target_lengths"]
        return compact[compact >= 0], lengths, compact

    def compute_loss(self, out, batch: dict[str, Any]) -> torch.Tensor:
        log_probs = out.logits.float().log_softmax(-1)
        flat, tlen, compact = self._targets(batch)
        mode = self.hparams.get("frame_check", "off")
        if mode != "off":
            hp = self.hparams
            ratio = 0.0 if getattr(self, "_tight_warned", False) else float(hp.get("frame_warn_ratio", 1.5))
            _, tight = check_ctc_frames(out.lengths, compact, tlen, batch.get("ids"), mode, ratio)
            self._tight_warned = getattr(self, "_tight_warned", False) or tight > 0  # warn once
        return F.ctc_loss(log_probs.transpose(0, 1), flat, out.lengths, tlen, blank=self.hparams.blank,
                          reduction="mean", zero_infinity=True)

    def decode(self, out) -> list[list[int]]:
        """Label sequences of a batch's output by ``self.hparams.decoding`` (:func:`ctc_decode`)."""
        hp = self.hparams
        return ctc_decode(out.logits.float(), out.lengths, hp.blank, hp.get("decoding", "greedy"),
                          int(hp.get("beam_width", 8)))

    def step_metrics(self, out, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.training:
            return {}
        hyps = self.decode(out)
        flat, tlen, _ = self._targets(batch)
        refs = torch.split(flat.cpu(), tlen.cpu().tolist())
        errors = sum(edit_distance(h, r.tolist()) for h, r in zip(hyps, refs))
        return {"per": torch.tensor(errors / max(1, int(tlen.sum())), dtype=torch.float32)}
