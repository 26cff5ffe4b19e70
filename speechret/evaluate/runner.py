"""The evaluation pipeline behind ``evaluate.py``: ``run_evaluation(cfg)``.

1. ``cfg.protocol`` (``conf/protocol/<name>.yaml``) is instantiated with Hydra: a retrieval
   :class:`~speechret.evaluate.protocols.Protocol` or a :class:`~speechret.evaluate.base.Study`
   (:func:`build_protocol`; anything else is a :class:`~speechret.errors.ConfigError`);
2. a **study** (``hash_length``, ``encryption``, ``retrieval_time``) runs itself with the run's
   :class:`Context`; a **retrieval protocol** evaluates one checkpoint (:func:`evaluate_checkpoint`):

   * the *evaluation set* (``evaluate.set``, :meth:`Context.eval_data`): disjoint from what the
     checkpoint trained or validated on, by construction and by a hard check
     (:mod:`speechret.evaluate.eval_sets`);
   * the *systems*: the deep hash of ``ckpt_path`` (:class:`~speechret.evaluate.systems.HashSystem`)
     and the baselines of ``evaluate.baselines`` — names of the Hydra nodes
     ``evaluate.baseline_systems.<name>`` (``conf/baseline/<name>.yaml``), built by
     :func:`~speechret.evaluate.baselines.instantiate_baselines`;
   * each system's *threshold*: ``evaluate.threshold`` / ``evaluate.thresholds.<system>`` when
     given, otherwise chosen on the same protocol run on the validation split of the checkpoint's
     training data (:meth:`Context.threshold_trial`; ``evaluate.threshold_fallback`` when that
     split cannot form a relevant pair) — never on the evaluation set (checked);
   * the protocol's trial, scored by every system (:func:`~speechret.evaluate.retrieval.run_retrieval`);
3. ``metrics.json`` (flat keys; the main system unprefixed, baselines as ``<system>.<key>``;
   ``eval_set``, ``eval_set_description``, ``eval_includes_training_data``, ``threshold_data``),
   PNG plots and ``report.md`` (first lines: the evaluation set, the threshold fallback if any) in
   the run directory (:mod:`speechret.evaluate.report`).

The names other modules import from here (``Context``, ``Result``, ``evaluate_checkpoint``,
``markdown_table``, ``report_header``, ``resolve_checkpoints``, ``set_metrics``, ``write_outputs``,
``load_eval_data``, ``TrainedOn``, ``check_disjoint``, ...) stay importable from this module.
"""

from __future__ import annotations

import glob
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig

from speechret.config import refuse_renamed_keys
from speechret.errors import ConfigError
from speechret.evaluate.base import Study, describe, kind_of
from speechret.evaluate.baselines import instantiate_baselines
from speechret.evaluate.eval_sets import (
    EVAL_SETS,
    SetRequest,
    TrainedOn,
    as_container,
    check_disjoint,
    check_threshold_data,
    choose_eval_data,
    item_keys,
    load_eval_data,
    new_synthetic_voices,
    set_metrics,
    set_name,
    threshold_splits,
    threshold_trial,
    training_data_cfg,
)
from speechret.evaluate.protocols import EvalData, Protocol, Trial
from speechret.evaluate.report import Result, markdown_table, print_summary, report_header, write_outputs
from speechret.evaluate.retrieval import FAR_TAUS, Scored, pick_threshold, run_retrieval, score, trial_metrics
from speechret.evaluate.systems import HashSystem
from speechret.hashing.sliding import DEFAULT_DIRECTION, check_direction

__all__ = [
    "Context", "ONE_VIEW", "evaluate_checkpoint", "build_protocol", "resolve_checkpoints", "run_evaluation",
    # re-exported: eval_sets, report, retrieval
    "EVAL_SETS", "TrainedOn", "check_disjoint", "item_keys", "load_eval_data", "new_synthetic_voices",
    "set_metrics", "Result", "markdown_table", "report_header", "write_outputs", "FAR_TAUS", "Scored",
    "pick_threshold", "run_retrieval", "score", "trial_metrics",
]

THRESHOLD_CRITERIA = ("f1", "eer", "precision")
#: ``metrics["views"]`` of an evaluation whose codes are made from one view of each clip
ONE_VIEW = "one per clip"


# --------------------------------------------------------------------------------------------
# checkpoints and the run's context
# --------------------------------------------------------------------------------------------


def resolve_checkpoints(spec: Any) -> list[Path]:
    """``ckpt_path`` as a file, a glob, a directory (a run or multirun folder: the best checkpoint
    named in each ``summary.json`` below it, else every ``*.ckpt`` except ``last.ckpt``) or a
    list of those."""
    if spec is None:
        return []
    if isinstance(spec, (list, tuple, ListConfig)):
        out: list[Path] = []
        for x in spec:
            out += resolve_checkpoints(x)
        return out
    p = Path(str(spec))
    if p.is_file():
        return [p]
    if p.is_dir():
        found = []
        for summ in sorted(p.rglob("summary.json")):
            best = json.loads(summ.read_text()).get("best_checkpoint")
            if best and Path(best).is_file():
                found.append(Path(best))
        if not found:
            found = sorted(c for c in p.rglob("*.ckpt") if c.name != "last.ckpt")
        if not found:
            raise FileNotFoundError(f"no checkpoint under {p}")
        return found
    hits = sorted(Path(x) for x in glob.glob(str(spec), recursive=True))
    if not hits:
        raise FileNotFoundError(f"checkpoint not found: {spec}")
    return hits


def _number(key: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number or null, not {value!r}") from None


def _ints(key: str, value: Any) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(x) for x in value]
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a list of integers or null, not {value!r}") from None


@dataclass
class Context:
    """What a study needs from the run: config, output folder and loaders (cached for the run)."""

    cfg: Any
    out_dir: Path
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def ev(self) -> Any:
        return self.cfg.evaluate

    def hasher(self, ckpt: str | Path):
        from speechret.hashing.hasher import Hasher

        options = self.ev.get("hash_options")
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"evaluate.hash_options: a mapping of the hash method's options (e.g. "
                              f"{{binarize: argmax}}), not {options!r}")
        return Hasher.from_checkpoint(ckpt, device=str(self.ev.get("device", "cpu")),
                                      batch_size=int(self.ev.get("batch_size", 32)), views=self.views(),
                                      hash_options=dict(options or {}))

    def views(self) -> Any:
        """``evaluate.views``: ``checkpoint`` (the run config's own), ``none`` (one view), or the
        name of a ``conf/views`` option whose ``views`` node replaces the checkpoint's."""
        from speechret.hashing.hasher import views_node

        return views_node(self.ev.get("views", "checkpoint"), "evaluate.views")

    # ------------------------------------------------------------------ the evaluation set
    def set_name(self) -> str:
        """``evaluate.set``; null/``auto``: ``test`` without ``data=...``, ``unseen`` with it."""
        return set_name(self.ev.get("set"), bool(self.cfg.get("data")))

    def training_data_cfg(self, hasher: Any | None) -> dict[str, Any] | None:
        """The data config stored in the checkpoint, its root replaced by ``evaluate.val_root``."""
        return training_data_cfg(hasher, self.ev.get("val_root"))

    def trained_on(self, hasher: Any) -> TrainedOn:
        d = self.training_data_cfg(hasher)
        if d is None:
            raise ConfigError("the checkpoint stores no data config, so what it trained on is unknown: "
                              "evaluate.set=all data=<config> evaluates a corpus whole (labelled as possibly "
                              "including training data)")
        key = ("trained_on", json.dumps(d, sort_keys=True, default=str))
        if key not in self.cache:
            self.cache[key] = TrainedOn.from_config(d)
        return self.cache[key]

    def eval_data(self, hasher: Any | None = None, protocol: Any | None = None) -> EvalData:
        """The evaluation set of ``evaluate.set`` for ``hasher``'s checkpoint and ``protocol``
        (speaker protocols also leave out the training speakers and need ``min_speakers``);
        disjointness from the checkpoint's train + val splits is checked
        (:func:`~speechret.evaluate.eval_sets.check_disjoint`)."""
        labels = _ints("evaluate.labels", self.ev.get("labels"))
        data_cfg = self.cfg.get("data")
        key = ("eval", self.set_name(), bool(getattr(protocol, "speaker_disjoint", False)),
               int(getattr(protocol, "min_speakers", 1)),
               json.dumps(self.training_data_cfg(hasher), sort_keys=True, default=str),
               json.dumps(as_container(data_cfg) if data_cfg else None, sort_keys=True, default=str),
               json.dumps(labels), str(self.ev.get("max_items")))
        if key not in self.cache:
            req = SetRequest(kind=self.set_name(), data_cfg=data_cfg, train_cfg=self.training_data_cfg(hasher),
                             has_checkpoint=hasher is not None,
                             speakers=bool(getattr(protocol, "speaker_disjoint", False)),
                             need=int(getattr(protocol, "min_speakers", 1)),
                             pname=getattr(protocol, "name", "this"), labels=labels,
                             max_items=self.ev.get("max_items"), seed=int(self.cfg.get("seed") or 0),
                             new_voices=int(self.ev.get("new_voices") or 0))
            self.cache[key] = choose_eval_data(req, lambda: self.trained_on(hasher))
        return self.cache[key]

    # ------------------------------------------------------------------ threshold data
    def val_data(self, hasher: Any, splits: Sequence[str] | None = None) -> EvalData | None:
        """Splits of the checkpoint's training data (default ``evaluate.threshold_split``) for the
        thresholds: the training run's split, then only the items of ``evaluate.labels`` when it is
        set, so a threshold is chosen on the vocabulary it is used on."""
        if splits is None:
            splits = threshold_splits(self.ev.get("threshold_split", "val"), "evaluate.threshold_split")
        splits = list(splits)
        if not splits:
            return None
        data_cfg = self.training_data_cfg(hasher)
        if not data_cfg:
            raise ConfigError("the checkpoint holds no data config to take a validation split from; "
                              "set evaluate.threshold=<value>")
        labels = _ints("evaluate.labels", self.ev.get("labels"))
        key = ("val", json.dumps(data_cfg, sort_keys=True, default=str), tuple(splits), json.dumps(labels))
        if key not in self.cache:
            parts = [load_eval_data(data_cfg, s, None, None, within_labels=labels) for s in splits]
            self.cache[key] = EvalData([it for p in parts for it in p.items], [w for p in parts for w in p.waves],
                                       parts[0].sample_rate, " + ".join(p.source for p in parts))
        return self.cache[key]

    def threshold_trial(self, hasher: Any, protocol: Protocol) -> tuple[Trial, EvalData, str] | None:
        """The protocol's trial on the threshold data: ``evaluate.threshold_split`` (the validation
        split), or — when that cannot form a relevant pair of this protocol (too few speakers, a
        protocol that needs two voices) — ``evaluate.threshold_fallback`` (train + val), never the
        evaluation set.  Returns (trial, its data, a note for the report when it fell back)."""
        first = threshold_splits(self.ev.get("threshold_split", "val"), "evaluate.threshold_split")
        if not first:
            return None
        tries = [first]
        second = threshold_splits(self.ev.get("threshold_fallback"), "evaluate.threshold_fallback")
        if second and second != first:
            tries.append(second)
        return threshold_trial(protocol, tries, lambda splits: self.val_data(hasher, splits))

    def thresholds(self, names: Sequence[str]) -> dict[str, float | None]:
        """Given thresholds per system (``evaluate.thresholds.<system>``; ``evaluate.threshold`` for
        the first, the checkpoint's); None where one is to be chosen."""
        given = dict(self.ev.get("thresholds") or {})
        out = {n: _number(f"evaluate.thresholds.{n}", given.get(n)) for n in names}
        if names and self.ev.get("threshold") is not None:
            out[names[0]] = _number("evaluate.threshold", self.ev.threshold)
        return out


# --------------------------------------------------------------------------------------------
# running a protocol
# --------------------------------------------------------------------------------------------


def evaluate_checkpoint(ctx: Context, protocol: Protocol, ckpt: Any, data: EvalData | None = None,
                        name: str = "deep_hash", baselines: Sequence[Any] = ()) -> tuple[Result, dict[str, Any]]:
    """One checkpoint (a path, or its already loaded Hasher) plus ``baselines`` (names of
    ``evaluate.baseline_systems`` or ``_target_`` nodes) on one retrieval protocol."""
    criterion = str(ctx.ev.get("threshold_criterion", "f1"))
    if criterion not in THRESHOLD_CRITERIA:
        raise ConfigError(f"evaluate.threshold_criterion must be one of {THRESHOLD_CRITERIA}, not {criterion!r}")
    bound = _number("evaluate.max_threshold", ctx.ev.get("max_threshold", 0.5))
    floor = _number("evaluate.min_precision", ctx.ev.get("min_precision", 0.95))
    if floor is None or not 0.0 < floor <= 1.0:
        raise ConfigError(f"evaluate.min_precision must lie in (0, 1], got {floor}")
    try:
        direction = check_direction(ctx.ev.get("direction") or DEFAULT_DIRECTION)
    except ValueError as e:
        raise ConfigError(f"evaluate.direction: {e}") from e
    hasher = ctx.hasher(ckpt) if isinstance(ckpt, (str, Path)) else ckpt
    system = HashSystem(hasher, name=name, direction=direction)
    systems = [system] + instantiate_baselines(baselines, ctx.ev.get("baseline_systems"), system)
    data = data if data is not None else ctx.eval_data(hasher, protocol)
    thresholds = ctx.thresholds([s.name for s in systems])
    val, note = None, ""
    if any(v is None for v in thresholds.values()):
        got = ctx.threshold_trial(hasher, protocol)
        if got is not None:
            val, vdata, note = got
            check_threshold_data(vdata, data)  # never choose a threshold on the evaluation set
    res = run_retrieval(protocol, systems, data, val, thresholds, ctx.out_dir, criterion,
                        None if ctx.ev.get("strict") is None else bool(ctx.ev.get("strict")), bound, floor)
    res.metrics.update(set_metrics(data))
    res.metrics["views"] = ONE_VIEW if hasher.views is None else repr(hasher.views)
    if ctx.ev.get("hash_options"):
        res.metrics["hash_options"] = dict(ctx.ev.hash_options)
    if val is not None:
        res.metrics["threshold_data"] = val.info.get("source", "")
    if note:
        res.metrics["threshold_note"] = note
    return res, {"hasher": hasher, "system": system, "data": data, "threshold_note": note}


def build_protocol(cfg: DictConfig) -> Protocol | Study:
    """``cfg.protocol`` instantiated (a retrieval protocol or a study); a bad node is a
    :class:`~speechret.errors.ConfigError` naming ``protocol``."""
    node = cfg.get("protocol")
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"protocol: a Hydra node with a _target_ (conf/protocol/<name>.yaml), not {node!r}")
    try:
        protocol = instantiate(node, _convert_="all")
    except InstantiationException as e:
        raise ConfigError(f"protocol: {e}") from e
    kind_of(protocol)  # a Protocol or a Study, or a ConfigError
    return protocol


def _run_protocol(ctx: Context, protocol: Protocol) -> tuple[Result, dict[str, Any]]:
    """A retrieval protocol on the one checkpoint of ``ckpt_path``: its result and report header lines."""
    ckpts = resolve_checkpoints(ctx.cfg.get("ckpt_path"))
    if len(ckpts) != 1:
        raise ConfigError(f"ckpt_path: protocol {protocol.name} evaluates one checkpoint: give ckpt_path=<path> "
                          f"(got {len(ckpts)}: {[str(c) for c in ckpts][:5]})")
    res, info = evaluate_checkpoint(ctx, protocol, ckpts[0], baselines=ctx.ev.get("baselines") or [])
    rest: dict[str, Any] = {}
    rest.update(protocol.describe())
    rest.update(info["system"].describe())
    rest["checkpoint"] = str(ckpts[0])
    rest["evaluation data"] = f"{info['data'].source}, {len(info['data'])} items"
    if info["data"].skipped:
        rest["skipped files"] = len(info["data"].skipped)
        res.metrics["n_skipped_files"] = len(info["data"].skipped)
    res.metrics["ckpt"] = str(ckpts[0])
    return res, rest


def run_evaluation(cfg: DictConfig, out_dir: str | Path | None = None) -> dict[str, Any]:
    """``evaluate.py``: run ``cfg.protocol`` and write metrics.json, plots and report.md."""
    refuse_renamed_keys(cfg)  # ckpt= is ckpt_path= (issue 15)
    t0 = time.perf_counter()
    out = Path(out_dir or cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(cfg, out)
    protocol = build_protocol(cfg)
    pname = getattr(protocol, "name", type(protocol).__name__)
    if kind_of(protocol) == "study":
        res, rest = protocol.run(ctx), describe(protocol)
    else:
        res, rest = _run_protocol(ctx, protocol)
    res.metrics["wall_s"] = round(time.perf_counter() - t0, 2)
    rest["wall time"] = f"{res.metrics['wall_s']:.1f} s"
    header = report_header(pname, res.metrics, rest)
    paths = write_outputs(out, res, f"speechret evaluation — {pname}", header)
    print_summary(out, res)
    return {"metrics": res.metrics, "out_dir": out, "metrics_file": paths["metrics"], "report": paths["report"]}
