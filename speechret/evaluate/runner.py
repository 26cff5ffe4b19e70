"""The evaluation pipeline behind ``evaluate.py``.

``run_evaluation(cfg)``:

1. the *evaluation set* (``evaluate.set``, :meth:`Context.eval_data`) — disjoint from what the
   checkpoint trained or validated on, by construction and by a hard check (:func:`check_disjoint`):

   * ``test`` (default without ``data=...``): the checkpoint's own test split — the data config
     stored in the checkpoint (``checkpoint["speechret"]["data"]``) split again by the same
     :class:`~speechret.data.datamodule.SpeechDataModule` logic and seed (:class:`TrainedOn`);
   * ``unseen`` (default with ``data=...``): every item of ``data`` except the items of the
     checkpoint's train and val splits, recognised by id and ``<folder>/<file>``
     (:func:`item_keys`), so the same corpus under another root is still recognised;
   * ``all``: every item, training data included; the report's first line says so.

   Speaker protocols (``cross_speaker``, ``keyword``: ``Protocol.speaker_disjoint``) also leave out
   every speaker of the train and val splits (speaker ids), and need ``min_speakers`` unheard
   voices; for the built-in synthetic corpus, missing voices are generated
   (:func:`new_synthetic_voices`, ``evaluate.new_voices``).  ``evaluate.labels`` and
   ``evaluate.max_items`` then select within the set; unreadable files are reported and skipped;
2. the *systems*: the deep hash of ``ckpt`` (:class:`~speechret.evaluate.systems.HashSystem`) and
   the baselines of ``evaluate.baselines`` (``dtw``, ``asr``);
3. the *protocol* (``conf/protocol/``) builds a :class:`~speechret.evaluate.protocols.Trial`;
4. each system's *threshold*: ``evaluate.threshold`` / ``evaluate.thresholds.<system>`` when given,
   otherwise the F1-maximising threshold (:func:`~speechret.evaluate.metrics.choose_threshold`)
   of the same protocol run on the **validation split of the checkpoint's training data**
   (``evaluate.threshold_split``); when that split cannot form one relevant pair of the protocol
   (one validation speaker and a speaker protocol), on ``evaluate.threshold_fallback`` (train +
   val) with a line in the report (:meth:`Context.threshold_trial`) — never on the evaluation set
   (checked);
5. distances → metrics (:mod:`speechret.evaluate.metrics`) → ``metrics.json`` (flat keys; the
   main system unprefixed, baselines as ``<system>.<key>``; ``eval_set``,
   ``eval_set_description``, ``eval_includes_training_data``, ``threshold_data``), PNG plots and
   ``report.md`` (first lines: the evaluation set, the threshold fallback if any) in the run
   directory.

Studies that are not a query/database ranking (``hash_length``, ``encryption``,
``retrieval_time``) are objects with a ``run(context)`` method (:mod:`speechret.evaluate.studies`)
and go through the same writer.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from speechret.audio import AudioError, load_audio
from speechret.evaluate import metrics as M
from speechret.evaluate.protocols import EvalData, Protocol, Trial
from speechret.evaluate.systems import HashSystem, build_baselines, take
from speechret.hashing import ber
from speechret.search.sliding import DEFAULT_DIRECTION

log = logging.getLogger(__name__)

FAR_TAUS = (0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16)


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    """What a protocol run leaves: flat metrics, report sections (title, markdown), plot files."""

    metrics: dict[str, Any] = field(default_factory=dict)
    sections: list[tuple[str, str]] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "–"
            if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
                return f"{v:.3g}"
            return f"{v:.4f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _json_safe(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, Mapping):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def write_outputs(out_dir: Path, result: Result, title: str, header: Mapping[str, Any]) -> dict[str, Path]:
    """``metrics.json`` (NaN → null) and ``report.md`` (header, sections, embedded plots)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mpath = out_dir / "metrics.json"
    mpath.write_text(json.dumps(_json_safe(result.metrics), indent=2, sort_keys=True))
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    for sec_title, body in result.sections:
        lines += ["", f"## {sec_title}", "", body.rstrip()]
    if result.plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in result.plots]
    rpath = out_dir / "report.md"
    rpath.write_text("\n".join(lines) + "\n")
    return {"metrics": mpath, "report": rpath}


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def _as_container(cfg: Any) -> dict[str, Any]:
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


#: ``evaluate.set`` values (conf/evaluate.yaml); null/auto = ``test`` without ``data=...``, ``unseen`` with it
EVAL_SETS = ("test", "unseen", "all")

_LOADER_OVERRIDES: dict[str, Any] = {"features": None, "augment": None, "copies": None,
                                     "cache_features": False, "cache_waveforms": False}


def _datamodule(data_cfg: Any, **overrides: Any) -> Any:
    """A set-up ``SpeechDataModule`` of a data config (no features, augmentation, CPO copies or
    caches) with ``overrides``; its ``split_indices`` are the training run's split when the
    config is the one stored in the checkpoint (same corpus, selection, split kind and seed)."""
    d = _as_container(data_cfg)
    d.update(_LOADER_OVERRIDES)
    d.update(overrides)
    dm = instantiate(d, _convert_="all")
    dm.prepare_data()
    dm.setup()
    return dm


def _read_items(items: Sequence[Any], sample_rate: int, source: str) -> EvalData:
    """Decode ``items``; files that fail are skipped with a warning naming them."""
    kept, waves, bad = [], [], []
    for it in items:
        try:
            waves.append(load_audio(it.path, sample_rate))
            kept.append(it)
        except AudioError as e:
            bad.append(str(e))
    for msg in bad[:20]:
        log.warning("skipped: %s", msg)
    if bad:
        log.warning("%d of %d files could not be read and were skipped", len(bad), len(items))
    return EvalData(kept, waves, sample_rate, source, skipped=bad)


def _seeded_subset(items: list[Any], max_items: int | None, seed: int) -> list[Any]:
    if max_items is not None and 0 < int(max_items) < len(items):
        rng = np.random.default_rng(seed)
        return [items[i] for i in sorted(rng.choice(len(items), size=int(max_items), replace=False).tolist())]
    return items


def load_eval_data(data_cfg: Any, split: str = "none", labels: Sequence[int] | None = None,
                   max_items: int | None = None, seed: int = 0) -> EvalData:
    """Items of ``split`` of a data config (a ``SpeechDataModule`` config, e.g. ``cfg.data`` or the
    ``data`` section stored in a checkpoint) with their waveforms.

    ``split="none"`` takes the whole corpus with its original content labels (``evaluate.set=all``
    and the corpus ``unseen`` filters); ``"val"``/``"train"``/``"test"`` reproduce the training
    run's split (same seed).  Files that fail to decode are skipped with a warning naming them.
    """
    d = _as_container(data_cfg)
    overrides: dict[str, Any] = {}
    if split == "none":
        overrides.update(split="none", relabel=False)
    if labels is not None:
        overrides["labels"] = [int(x) for x in labels]
        overrides["relabel"] = False
    dm = _datamodule(d, **overrides)
    idx = list(range(len(dm.items))) if split == "none" else list(dm.split_indices.get(split, []))
    if not idx:
        raise ValueError(f"data {d.get('corpus')} at {d.get('root')}: split {split!r} is empty")
    items = _seeded_subset([dm.items[i] for i in idx], max_items, seed)
    return _read_items(items, dm.sample_rate, f"{d.get('corpus')}:{d.get('root')} ({split})")


# --------------------------------------------------------------------------------------------
# the evaluation set: never an item (or, for speaker protocols, a speaker) the checkpoint saw
# --------------------------------------------------------------------------------------------


def item_keys(item: Any) -> tuple[str, str]:
    """How an item is recognised across corpus copies: its id and the last two components of its
    path (``<speaker folder>/<file>``) — never the absolute path, so the same corpus under another
    root (a copy, ``evaluate.val_root``, another machine) is still recognised."""
    p = Path(str(item.path))
    return str(item.id), f"{p.parent.name}/{p.name}"


@dataclass
class TrainedOn:
    """What a checkpoint trained and validated on: the ``train`` and ``val`` splits that its
    stored data config makes (the DataModule's own split logic, same seed), as item keys
    (:func:`item_keys`) and speaker ids; ``dm`` is that DataModule (corpus labels, not relabelled)."""

    keys: frozenset[str]
    speakers: frozenset[str]
    n_items: int
    dm: Any
    source: str

    @classmethod
    def from_config(cls, data_cfg: Any) -> TrainedOn:
        # relabel=False keeps the corpus labels (evaluate.labels) and leaves every split kind
        # unchanged: the relabelling is monotone and applied after the selection.
        dm = _datamodule(data_cfg, relabel=False)
        seen = [dm.items[i] for s in ("train", "val") for i in dm.split_indices.get(s, [])]
        keys = frozenset(k for it in seen for k in item_keys(it))
        d = _as_container(data_cfg)
        return cls(keys, frozenset(str(it.speaker) for it in seen), len(seen), dm,
                   f"{d.get('corpus')}:{d.get('root')}")

    def saw(self, item: Any, speakers: bool) -> bool:
        """Whether the checkpoint trained or validated on ``item`` (or, ``speakers``, on its voice)."""
        return any(k in self.keys for k in item_keys(item)) or (speakers and str(item.speaker) in self.speakers)


def check_disjoint(data: EvalData, trained: TrainedOn, speakers: bool) -> None:
    """The hard check behind every ``test`` / ``unseen`` evaluation: no item of ``data`` is one the
    checkpoint trained or validated on, and for speaker protocols no speaker either."""
    items = [it.id for it in data.items if any(k in trained.keys for k in item_keys(it))]
    voices = sorted({str(it.speaker) for it in data.items} & trained.speakers) if speakers else []
    if items or voices:
        raise ValueError(
            f"evaluation set {data.eval_set!r} is not disjoint from the checkpoint's training data ({trained.source}, "
            f"train + val splits): {len(items)} items it trained or validated on (e.g. {items[:5]})"
            + (f" and {len(voices)} of its speakers ({voices[:10]})" if voices else "")
            + "; evaluate.set=all evaluates such data on purpose (labelled as including training data)")


def _speakers(items: Sequence[Any]) -> list[str]:
    return sorted({str(it.speaker) for it in items})


def _short(names: Sequence[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f", … ({len(names)})" if len(names) > n else "")


def new_synthetic_voices(data_cfg: Any, k: int, labels: Sequence[int] | None = None) -> tuple[list[Any], str]:
    """``k`` voices of the built-in synthetic corpus that ``data_cfg`` (a ``corpus: synthetic``
    config) does not hold: the generator's speakers ``n … n+k-1``.  A synthetic speaker depends
    only on ``(seed, index)`` (:func:`speechret.data.synthetic.make_speakers`), so a corpus of
    ``n + k`` speakers extends the training corpus with ``k`` voices no model trained on it heard.
    The extended corpus is generated once next to the original (``<root>_voices<n+k>``)."""
    import inspect

    from speechret.data.synthetic import generate_corpus, make_speakers

    d = _as_container(data_cfg)
    kw = dict(d.get("corpus_kwargs") or {})
    n0 = int(kw.get("n_speakers", inspect.signature(generate_corpus).parameters["n_speakers"].default))
    old = {s.name for s in make_speakers(n0, int(kw.get("seed", 0)))}
    kw["n_speakers"] = n0 + int(k)
    root = Path(str(d["root"]))
    d.update(root=str(root.with_name(f"{root.name}_voices{n0 + int(k)}")), corpus_kwargs=kw, speakers=None)
    log.info("generating %d new synthetic voices in %s", k, d["root"])
    dm = _datamodule(d, split="none", relabel=False)
    keep = [it for it in dm.items if str(it.speaker) not in old]
    if labels is not None:
        keep = [it for it in keep if it.label in set(int(x) for x in labels)]
    return keep, str(d["root"])


# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
# scoring one system on one trial
# --------------------------------------------------------------------------------------------


@dataclass
class Scored:
    system: Any
    distances: np.ndarray
    query_codes: Any
    db_codes: Any
    encode_s: float
    match_s: float


def score(system: Any, trial: Trial) -> Scored:
    t0 = time.perf_counter()
    db = system.encode(trial.db_waves)
    q = system.encode(trial.query_waves)
    t1 = time.perf_counter()
    D = np.asarray(system.distances(q, db, trial.mode))
    if D.dtype != np.float64:  # float64 distances (paper C) stay exact: they are compared with γ
        D = D.astype(np.float32)
    t2 = time.perf_counter()
    return Scored(system, D, q, db, t1 - t0, t2 - t1)


def pick_threshold(system: Any, protocol: Protocol, val: EvalData | Trial | None, given: float | None,
                   criterion: str = "f1", max_threshold: float | None = None) -> dict[str, Any]:
    """The system's threshold: ``given``, or the max-``criterion`` threshold of the protocol run
    on the validation data (``val``: the data, or the trial already built from it)."""
    if given is not None:
        return {"threshold": float(given), "source": "given (evaluate.threshold)"}
    if val is None:
        raise ValueError(f"{system.name}: no threshold given and no validation data to choose one; "
                         "set evaluate.threshold=<value> (or evaluate.thresholds.<system>=<value>)")
    trial = val if isinstance(val, Trial) else protocol.build(val)
    where = trial.info.get("source", "the validation data")
    if not trial.relevant.any():
        raise ValueError(f"{system.name}: the {protocol.name} protocol on {where} has no relevant pair to "
                         "choose a threshold; set evaluate.threshold=<value> or evaluate.threshold_split=[val,train]")
    s = score(system, trial)
    bound = max_threshold if getattr(system, "is_hash", False) else None
    c = M.choose_threshold(s.distances, trial.relevant, trial.exclude, criterion, bound)
    return {"threshold": c["threshold"], "val_f1": c["f1"], "val_precision": c["precision"],
            "val_recall": c["recall"],
            "source": f"max {criterion.upper()} on {where}: {trial.n_queries} queries × {trial.n_database} items"}


def _paired_distance(system: Any, scored: Scored, trial: Trial) -> np.ndarray:
    """Distance of each query to its own source (NaN where none); BER for hash systems."""
    out = np.full(trial.n_queries, np.nan)
    has = trial.source >= 0
    if not has.any():
        return out
    if getattr(system, "is_hash", False):
        rows = np.flatnonzero(has)
        src = trial.source[rows]
        if isinstance(scored.query_codes, np.ndarray):
            k = system.n_classes
            q = np.asarray(scored.query_codes, dtype=bool)[rows][:, k:]
            d = np.asarray(scored.db_codes, dtype=bool)[src][:, k:]
            out[rows] = ber(q, d)
        else:
            for r, s_ in zip(rows, src):
                out[r] = float(system.ber([scored.query_codes[r]], [scored.db_codes[s_]])[0, 0])
        return out
    out[has] = scored.distances[np.flatnonzero(has), trial.source[has]]
    return out


def _block_metrics(D: np.ndarray, rel: np.ndarray, exc: np.ndarray | None, T: float, strict: bool,
                   prefix: str = "", suffix: str = "") -> dict[str, float]:
    """mAP, pooled P/R/F1 and paper C's Ap of one block of queries, keys ``prefix+name+suffix``."""
    mp = M.mean_average_precision(D, rel, exclude=exc)
    prf = M.precision_recall_f1(D, rel, T, exc, strict)
    vals = {"map": mp["map"], "precision": prf["precision"], "recall": prf["recall"], "f1": prf["f1"],
            "ap": prf["macro_precision"]}
    if not prefix and not suffix:
        vals.update(macro_recall=prf["macro_recall"], n_queries_without_relevant=mp["n_queries_without_relevant"],
                    tp=prf["tp"], fp=prf["fp"], fn=prf["fn"])
    return {f"{prefix}{k}{suffix}": v for k, v in vals.items()}


def trial_metrics(scored: Scored, trial: Trial, threshold: float, strict: bool = True,
                  inter_class: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flat metrics of one system on one trial, and the arrays the plots need."""
    D, T = scored.distances, threshold
    m: dict[str, Any] = {"threshold": T, "n_queries": trial.n_queries, "n_database": trial.n_database}
    if isinstance(scored.db_codes, list):  # variable-length codes / transcriptions: how many are empty
        lens = [len(c) for c in list(scored.db_codes) + list(scored.query_codes)]
        m["empty_codes"] = float(np.mean([n == 0 for n in lens])) if lens else float("nan")
    m.update(_block_metrics(D, trial.relevant, trial.exclude, T, strict))
    ranked = np.ones_like(trial.relevant) if trial.exclude is None else ~trial.exclude
    # chance: a retriever picking ranked pairs at random has this precision at any recall
    m["base_rate"] = float(trial.relevant[ranked].mean()) if ranked.any() else float("nan")
    groups = trial.group_names()
    g_arr = np.asarray(trial.groups, dtype=object)
    if len(groups) > 1:
        for g in groups:
            rows = np.flatnonzero(g_arr == g)
            exc = None if trial.exclude is None else trial.exclude[rows]
            m.update(_block_metrics(D[rows], trial.relevant[rows], exc, T, strict, suffix=f".{g}"))
    for view, (rel, exc) in trial.views.items():
        m.update(_block_metrics(D, rel, exc, T, strict, prefix=f"{view}."))
    # the query-source distance measures robustness only when the query is another recording of
    # its source (a CPO'd / noisy copy); a self-query's distance to itself is 0 by construction
    paired = np.full(trial.n_queries, np.nan) if trial.self_query else _paired_distance(scored.system, scored, trial)
    curves: dict[str, Any] = {"paired": paired}
    if np.isfinite(paired).any():
        valid = np.isfinite(paired)
        got = (paired < T) if strict else (paired <= T)
        m["identity_recall"] = float(got[valid].mean())
        rows = np.flatnonzero(valid)
        d_src = D[rows, trial.source[rows]]
        others = D[rows].astype(np.float64).copy()
        others[np.arange(len(rows)), trial.source[rows]] = np.inf
        if trial.exclude is not None:
            others[trial.exclude[rows]] = np.inf
        better = (others < d_src[:, None]).sum(1)
        ties = (others == d_src[:, None]).sum(1)
        m["identity_top1"] = float(np.mean(np.where(better == 0, 1.0 / (1 + ties), 0.0)))
        for g in groups:
            sel = valid & (g_arr == g)
            if sel.any():
                key = g if g else "all"
                m[f"ber_mean.{key}"] = float(np.mean(paired[sel]))
                if len(groups) > 1:
                    m[f"identity_recall.{key}"] = float(got[sel].mean())
    dmax = float(np.nanmax(D[np.isfinite(D)])) if np.isfinite(D).any() else 1.0
    grid = np.unique(np.r_[np.linspace(0.0, dmax * 1.0001, 201), T])
    curves["pr"] = M.pr_curve(D, trial.relevant, trial.exclude, thresholds=grid)
    if inter_class and getattr(scored.system, "is_hash", False) and trial.inter_class_idx is not None:
        idx = trial.inter_class_idx
        codes = take(scored.db_codes, idx)
        B = np.asarray(scored.system.ber(codes, codes), dtype=np.float64)
        lab = np.asarray(trial.db_labels)[idx]
        iu = np.triu_indices(len(idx), 1)
        diff = lab[iu[0]] != lab[iu[1]]
        inter = B[iu][diff]
        n_bits = scored.system.n_bits(scored.db_codes)
        m.update(M.ber_statistics(inter, n_bits, FAR_TAUS))
        curves["inter_ber"] = inter
        curves["n_bits"] = n_bits
        curves["intra_ber"] = _intra_ber(B, idx, trial) if trial.self_query else paired[np.isfinite(paired)]
        intra = curves["intra_ber"]
        m["intra_ber_mean"] = float(np.mean(intra)) if len(intra) else float("nan")
        m["intra_ber_n"] = int(len(intra))
    return m, curves


def _intra_ber(B: np.ndarray, idx: np.ndarray, trial: Trial) -> np.ndarray:
    """Intra-class BER of a self-query trial (paper A Fig. 7's same-content histogram): the BER of
    every *relevant* pair among the sampled items ``idx`` (for cross_speaker: same content by
    another speaker; the query itself and its own speaker are never relevant).  ``B`` is the BER
    matrix of ``idx`` × ``idx``."""
    idx = np.asarray(idx, dtype=np.int64)
    row_of = {int(s): q for q, s in enumerate(trial.source)}
    rows = np.array([row_of.get(int(i), -1) for i in idx], dtype=np.int64)
    a, b = np.triu_indices(len(idx), 1)
    ok = rows[a] >= 0
    rel = np.zeros(len(a), dtype=bool)
    rel[ok] = trial.relevant[rows[a][ok], idx[b][ok]]
    return np.asarray(B[a, b][rel], dtype=np.float64)


# --------------------------------------------------------------------------------------------
# the retrieval protocols
# --------------------------------------------------------------------------------------------


def run_retrieval(protocol: Protocol, systems: Sequence[Any], data: EvalData, val: EvalData | Trial | None,
                  thresholds: Mapping[str, float | None], out_dir: Path, criterion: str = "f1",
                  strict: bool | None = True, max_threshold: float | None = 0.5) -> Result:
    """Every system on the protocol's trial: thresholds, metrics, plots and report sections.
    ``val``: the threshold data (or the trial already built on it); ``strict``: retrieved iff
    ``d < T`` (True), ``d ≤ T`` (False) or, ``None``, each system's own rule (its
    ``threshold_strict``: ``<`` for papers A and B, ``≤`` for paper C; ``<`` when it has none);
    ``max_threshold`` bounds the thresholds chosen for deep hashes (papers: 0 < T < 0.5)."""
    from speechret.evaluate import plots

    trial = protocol.build(data)
    log.info("%s: %d queries × %d database items (%s)", protocol.name, trial.n_queries, trial.n_database, data.source)
    res = Result()
    res.metrics.update({"protocol": protocol.name, "n_queries": trial.n_queries, "n_database": trial.n_database})
    rows, thr_rows, group_rows, far_rows = [], [], {}, {}
    pr_curves = {}
    warnings: list[tuple[str, str]] = []
    val_trial = None
    for i, system in enumerate(systems):
        prefix = "" if i == 0 else f"{system.name}."
        if thresholds.get(system.name) is None and val is not None and val_trial is None:
            if isinstance(val, Trial):  # already built (Context.threshold_trial)
                val_trial = val
            else:
                val_trial = protocol.build(val)  # built once, shared by every system
                val_trial.info["source"] = val.source
        th = pick_threshold(system, protocol, val_trial, thresholds.get(system.name), criterion, max_threshold)
        s = score(system, trial)
        strict_s = bool(getattr(system, "threshold_strict", True)) if strict is None else bool(strict)
        m, curves = trial_metrics(s, trial, th["threshold"], strict_s, inter_class=protocol.inter_class)
        m["encode_s"], m["match_s"] = s.encode_s, s.match_s
        m["threshold_source"] = th["source"]
        for k, v in m.items():
            res.metrics[prefix + k] = v
        if trial.mode == "keyword":
            res.metrics[prefix + "keyword_recall"] = m["recall"]
            res.metrics[prefix + "keyword_precision"] = m["precision"]
        rows.append([system.name, m["map"], m["precision"], m["recall"], m["f1"], m["ap"],
                     m.get("identity_recall", float("nan")), th["threshold"]])
        thr_rows.append([system.name, th["threshold"], th["source"], th.get("val_f1", float("nan"))])
        for g in trial.group_names():
            if g:
                group_rows.setdefault(g, []).append((system.name, m))
        if "inter_ber_mean" in m:
            far_rows[system.name] = m
            res.plots.append(plots.plot_ber_histogram(
                curves["inter_ber"], out_dir / f"ber_histogram_{system.name}.png", intra_ber=curves["intra_ber"],
                mu=m["inter_ber_mean"], sigma=m["inter_ber_std"], n_bits=curves["n_bits"],
                title=f"{system.name}: BER of different content (paper A Fig. 7)",
                intra_label="intra-class BER: same content, other speaker" if trial.self_query
                else "intra-class BER: CPO'd query vs source"))
        pr = curves["pr"]
        pr_curves[system.name] = (pr["recall"], pr["precision"])
        empty = m.get("empty_codes", 0.0)
        if empty > 0.5:
            warnings.append((f"Warning: {system.name} codes are degenerate", (
                f"{100 * empty:.1f}% of {system.name}'s codes are empty (a CTC model that emits blank/\"other\" on "
                "every frame leaves no pronunciation segment): those items are at distance 1 from everything, so "
                "its metrics measure nothing but the relevance base rate. Train longer, with the gradient norm "
                "clipped (`trainer.gradient_clip_val`, as in the CTC experiments).")))
    res.sections.extend(warnings)
    head = ["system", "mAP", "precision", "recall", "F1", "Ap (paper C)", "identity recall", "threshold"]
    res.sections.append(("Retrieval", markdown_table(head, rows) + "\n\nmAP: paper B eq. (17)–(18), tie-aware. "
                         "precision / recall / F1: pooled over queries at the threshold (paper A eq. 14–15, paper B "
                         "eq. 19–21). Ap: mean per-query precision of what is retrieved (paper C Tables 1–5)."))
    res.sections.append(("Thresholds", markdown_table(["system", "threshold", "how it was chosen", "val F1"], thr_rows)))
    if trial.views:
        vrows = []
        for i, system in enumerate(systems):
            prefix = "" if i == 0 else f"{system.name}."
            for view in trial.views:
                vrows.append([system.name, view] + [res.metrics.get(f"{prefix}{view}.{k}", float("nan"))
                                                     for k in ("map", "precision", "recall", "f1")])
        res.sections.append(("Other relevance views", markdown_table(["system", "view", "mAP", "precision", "recall", "F1"], vrows)))
    if group_rows:
        grows = []
        for g, lst in group_rows.items():
            for name, m in lst:
                grows.append([g, name, m.get(f"map.{g}", float("nan")), m.get(f"precision.{g}", float("nan")),
                              m.get(f"recall.{g}", float("nan")), m.get(f"ap.{g}", float("nan")),
                              m.get(f"ber_mean.{g}", float("nan")), m.get(f"identity_recall.{g}", float("nan"))])
        res.sections.append(("Per condition", markdown_table(
            ["condition", "system", "mAP", "precision", "recall", "Ap", "mean BER to source", "identity recall"], grows)))
        main = systems[0].name
        ber = {g: res.metrics.get(f"ber_mean.{g}", float("nan")) for g in group_rows}
        res.plots.append(plots.plot_bars(ber, out_dir / "ber_per_condition.png", ylabel="mean BER to source",
                                         title=f"{main}: mean BER per condition (paper A Table 4)"))
    if far_rows:
        frows = [[f"{t:.2f}"] + [far_rows[n].get(f"far@{t:.2f}", float("nan")) for n in far_rows] for t in FAR_TAUS]
        stats = [[n, m["inter_ber_mean"], m["inter_ber_std"], m["inter_ber_min"], m["inter_ber_max"],
                  m.get("theory_ber_std", float("nan")), m["inter_ber_n"], m.get("intra_ber_mean", float("nan")),
                  m.get("intra_ber_n", 0)] for n, m in far_rows.items()]
        intra_is = ("same content by another speaker (the relevant pairs)" if trial.self_query
                    else "each CPO'd query and its source")
        res.sections.append(("Inter-class BER and FAR (paper A §5.2, eq. 13)",
                             markdown_table(["system", "mean μ", "std σ", "min", "max", "theory σ", "pairs",
                                             "intra-class mean", "intra pairs"], stats)
                             + f"\n\nIntra-class BER: {intra_is}."
                             + "\n\n" + markdown_table(["τ"] + list(far_rows), frows)))
        res.plots.append(plots.plot_lines(list(FAR_TAUS), {n: [far_rows[n].get(f"far@{t:.2f}", float("nan")) for t in FAR_TAUS]
                                                           for n in far_rows}, out_dir / "far.png", xlabel="τ",
                                          ylabel="FAR", title="FAR of the normal fit (paper A eq. 13)", logy=True))
    res.plots.append(plots.plot_pr_curves(pr_curves, out_dir / "pr_curve.png", title="Precision–recall (paper A Fig. 8)"))
    if protocol.name == "noise":
        _noise_section(protocol, systems, res, out_dir)
    return res


def _noise_section(protocol: Any, systems: Sequence[Any], res: Result, out_dir: Path) -> None:
    from speechret.evaluate import plots

    rows = []
    for i, system in enumerate(systems):
        prefix = "" if i == 0 else f"{system.name}."
        for noise in protocol.noises:
            for key in ("ap", "recall", "map"):
                vals = [res.metrics.get(f"{prefix}{key}.{protocol.group(noise, s)}", float("nan")) for s in protocol.snrs]
                rows.append([noise, key, system.name] + vals)
        series = {f"{system.name} {n}": [res.metrics.get(f"{prefix}ap.{protocol.group(n, s)}", float("nan"))
                                         for s in protocol.snrs] for n in protocol.noises}
        res.plots.append(plots.plot_lines(protocol.snrs, series, out_dir / f"noise_ap_{system.name}.png",
                                          xlabel="SNR (dB)", ylabel="Ap", title=f"{system.name}: Ap under noise (paper C Table 3)"))
    head = ["noise", "metric", "system"] + [f"{s:g} dB" for s in protocol.snrs]
    res.sections.append(("Noise robustness (paper C Table 3)", markdown_table(head, rows)))


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def resolve_checkpoints(spec: Any) -> list[Path]:
    """``ckpt`` as a file, a glob, a directory (a run or multirun folder: the best checkpoint
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
        from speechret.hasher import Hasher

        return Hasher.from_checkpoint(ckpt, device=str(self.ev.get("device", "cpu")),
                                      batch_size=int(self.ev.get("batch_size", 32)))

    # ------------------------------------------------------------------ the evaluation set
    def set_name(self) -> str:
        """``evaluate.set``; null/``auto``: ``test`` without ``data=...``, ``unseen`` with it."""
        s = self.ev.get("set")
        s = "" if s is None else str(s)
        if s in ("", "auto"):
            return "unseen" if self.cfg.get("data") else "test"
        if s not in EVAL_SETS:
            raise ValueError(f"evaluate.set must be one of {EVAL_SETS} (or null for the default), not {s!r}")
        return s

    def training_data_cfg(self, hasher: Any | None) -> dict[str, Any] | None:
        """The data config stored in the checkpoint (``checkpoint["speechret"]["data"]``), its root
        replaced by ``evaluate.val_root`` when the corpus moved."""
        d = dict(((hasher.config or {}) if hasher is not None else {}).get("data") or {})
        if not d:
            return None
        if self.ev.get("val_root"):
            d["root"] = str(self.ev.val_root)
        return d

    def trained_on(self, hasher: Any) -> TrainedOn:
        d = self.training_data_cfg(hasher)
        if d is None:
            raise ValueError("the checkpoint stores no data config, so what it trained on is unknown: "
                             "evaluate.set=all data=<config> evaluates a corpus whole (labelled as possibly "
                             "including training data)")
        key = ("trained_on", json.dumps(d, sort_keys=True, default=str))
        if key not in self.cache:
            self.cache[key] = TrainedOn.from_config(d)
        return self.cache[key]

    def eval_data(self, hasher: Any | None = None, protocol: Any | None = None) -> EvalData:
        """The evaluation set of ``evaluate.set`` for ``hasher``'s checkpoint and ``protocol``
        (speaker protocols also leave out the training speakers and need ``min_speakers``);
        disjointness from the checkpoint's train + val splits is checked (:func:`check_disjoint`)."""
        labels = self.ev.get("labels")
        labels = None if labels is None else [int(x) for x in labels]
        data_cfg = self.cfg.get("data")
        key = ("eval", self.set_name(), bool(getattr(protocol, "speaker_disjoint", False)),
               int(getattr(protocol, "min_speakers", 1)),
               json.dumps(self.training_data_cfg(hasher), sort_keys=True, default=str),
               json.dumps(_as_container(data_cfg) if data_cfg else None, sort_keys=True, default=str),
               json.dumps(labels), str(self.ev.get("max_items")))
        if key not in self.cache:
            self.cache[key] = self._eval_data(hasher, protocol, labels)
        return self.cache[key]

    def _eval_data(self, hasher: Any | None, protocol: Any | None, labels: list[int] | None) -> EvalData:
        kind = self.set_name()
        speakers = bool(getattr(protocol, "speaker_disjoint", False))
        need = int(getattr(protocol, "min_speakers", 1))
        pname = getattr(protocol, "name", "this")
        seed = int(self.cfg.get("seed") or 0)
        max_items = self.ev.get("max_items")
        data_cfg = self.cfg.get("data")
        train_cfg = self.training_data_cfg(hasher)
        keep_label = (lambda it: True) if labels is None else (lambda it: it.label in set(labels))

        if kind == "all" or hasher is None:
            src_cfg = data_cfg or train_cfg
            if not src_cfg:
                raise ValueError("no evaluation data: give data=<config> (e.g. data=dspspeech20 data.root=...)")
            d = _as_container(src_cfg)
            dm = _datamodule(d, split="none", relabel=False)
            items = _seeded_subset([it for it in dm.items if keep_label(it)], max_items, seed)
            data = _read_items(items, dm.sample_rate, f"{d.get('corpus')}:{d.get('root')} (all)")
            data.eval_set = "all"
            if hasher is None:
                data.description = (f"every item of {d.get('corpus')}:{d.get('root')} ({len(data)} items; no "
                                    "checkpoint, so no training data to leave out)")
            elif train_cfg is None:
                data.description = (f"ALL items of {d.get('corpus')}:{d.get('root')} ({len(data)} items) — MAY INCLUDE "
                                    "TRAINING DATA: the checkpoint stores no data config (evaluate.set=all)")
            else:
                trained = self.trained_on(hasher)
                n_seen = sum(trained.saw(it, speakers) for it in data.items)
                data.description = (f"ALL items of {d.get('corpus')}:{d.get('root')} ({len(data)} items, "
                                    f"{len(_speakers(data.items))} speakers) — INCLUDES TRAINING DATA: {n_seen} of them "
                                    + ("are by speakers the checkpoint trained or validated on" if speakers else
                                       "were trained or validated on")
                                    + " (evaluate.set=all); thresholds and metrics are optimistic")
            return data

        trained = self.trained_on(hasher)
        if kind == "test":
            if data_cfg:
                raise ValueError("evaluate.set=test evaluates the checkpoint's own test split: drop data=... (use "
                                 "evaluate.val_root=<dir> if its corpus moved), or use evaluate.set=unseen to evaluate "
                                 "data=... minus what the checkpoint trained or validated on")
            src_cfg = train_cfg
            dm = trained.dm
            items = [dm.items[i] for i in sorted(dm.split_indices.get("test", []))]
            d = _as_container(src_cfg)
            what = (f"the checkpoint's own test split of {d.get('corpus')}:{d.get('root')} (split={d.get('split')}, "
                    f"seed={d.get('seed')}; the training run's DataModule split)")
            if not items:
                raise ValueError(f"the checkpoint's test split of {d.get('corpus')}:{d.get('root')} is empty "
                                 f"(data.test_fraction={d.get('test_fraction')} at training): evaluate another corpus "
                                 "with data=... (evaluate.set=unseen), or evaluate.set=all")
        else:
            src_cfg = data_cfg or train_cfg
            d = _as_container(src_cfg)
            dm = _datamodule(d, split="none", relabel=False)
            items = [it for it in dm.items if not trained.saw(it, False)]
            what = (f"{d.get('corpus')}:{d.get('root')} without the {len(dm.items) - len(items)} items the checkpoint "
                    "trained or validated on")
        items = [it for it in items if keep_label(it)]
        if speakers:  # a speaker split leaves none; a repetition / random split leaves all
            before = len(items)
            items = [it for it in items if str(it.speaker) not in trained.speakers]
            if before > len(items):
                what += (f", without the {before - len(items)} items by its {len(trained.speakers)} training and "
                         f"validation speakers ({pname} is a speaker protocol)")
        have = _speakers(items)
        added: list[Any] = []
        if len(have) < need:
            k = int(self.ev.get("new_voices") or 0)
            if k > 0 and d.get("corpus") == "synthetic":
                added, where = new_synthetic_voices(d, max(k, need - len(have)), labels)
                what += (f", plus {len(_speakers(added))} synthetic voices generated for this evaluation "
                         f"({_short(_speakers(added))}: the generator's speakers beyond the corpus's, never heard "
                         f"in training; evaluate.new_voices) at {where}")
                items += added
                kind += "+new_voices"
        have = _speakers(items)
        if not items:
            raise ValueError(f"the {kind} set is empty ({what}; evaluate.labels={labels}): nothing the checkpoint "
                             "never trained or validated on is left to evaluate")
        if len(have) < need:
            raise ValueError(
                f"the {pname} protocol needs at least {need} speakers the checkpoint never trained or validated on; "
                f"the {kind} set ({what}) has {len(have)}{': ' + _short(have) if have else ''}. Give data=<a corpus "
                "with more speakers> (evaluate.set=unseen leaves out the checkpoint's items and speakers), or "
                "evaluate.set=all (includes training data)")
        items = _seeded_subset(items, max_items, seed)
        data = _read_items(items, dm.sample_rate, f"{d.get('corpus')}:{d.get('root')} ({kind})")
        data.eval_set = kind
        spk = _speakers(data.items)
        data.description = (f"{what}: {len(data)} items, {len(spk)} speaker{'s' if len(spk) != 1 else ''} ({_short(spk)}); none of them "
                            + ("nor their speakers " if speakers else "")
                            + "trained or validated on (checked)")
        check_disjoint(data, trained, speakers)
        return data

    # ------------------------------------------------------------------ threshold data
    @staticmethod
    def _splits(spec: Any) -> list[str]:
        if not spec:
            return []
        return [str(spec)] if isinstance(spec, str) else [str(x) for x in spec]

    def val_data(self, hasher: Any, splits: Sequence[str] | None = None) -> EvalData | None:
        """Splits of the checkpoint's training data (default ``evaluate.threshold_split``) for the
        thresholds."""
        splits = self._splits(self.ev.get("threshold_split", "val")) if splits is None else list(splits)
        if not splits:
            return None
        data_cfg = self.training_data_cfg(hasher)
        if not data_cfg:
            raise ValueError("the checkpoint holds no data config to take a validation split from; "
                             "set evaluate.threshold=<value>")
        key = ("val", json.dumps(data_cfg, sort_keys=True, default=str), tuple(splits))
        if key not in self.cache:
            parts = [load_eval_data(data_cfg, s, None, None) for s in splits]
            self.cache[key] = EvalData([it for p in parts for it in p.items], [w for p in parts for w in p.waves],
                                       parts[0].sample_rate, " + ".join(p.source for p in parts))
        return self.cache[key]

    def threshold_trial(self, hasher: Any, protocol: Protocol) -> tuple[Trial, EvalData, str] | None:
        """The protocol's trial on the threshold data: ``evaluate.threshold_split`` (the validation
        split), or — when that cannot form a relevant pair of this protocol (too few speakers, a
        protocol that needs two voices) — ``evaluate.threshold_fallback`` (train + val), never the
        evaluation set.  Returns (trial, its data, a note for the report when it fell back)."""
        first = self._splits(self.ev.get("threshold_split", "val"))
        if not first:
            return None
        tries = [first]
        second = self._splits(self.ev.get("threshold_fallback"))
        if second and second != first:
            tries.append(second)
        why: list[str] = []
        for splits in tries:
            try:
                data = self.val_data(hasher, splits)
                spk = _speakers(data.items)
                if len(spk) < int(getattr(protocol, "min_speakers", 1)):
                    raise ValueError(f"{len(spk)} speaker{'s' if len(spk) != 1 else ''}: {_short(spk)}")
                trial = protocol.build(data)
                if not trial.relevant.any():
                    raise ValueError(f"no relevant pair among {len(spk)} speakers")
            except ValueError as e:
                why.append(f"{'+'.join(splits)}: {e}")
                continue
            trial.info["source"] = data.source
            note = ""
            if splits is not first:
                note = (f"the {'+'.join(first)} split cannot form {protocol.name} pairs ({why[0].split(': ', 1)[1]}); "
                        f"thresholds are chosen on {'+'.join(splits)} of the training data instead "
                        "(evaluate.threshold_fallback)" + (", which includes the training speakers: an optimistic "
                                                            "choice, never the evaluation set" if "train" in splits else ""))
                log.warning("thresholds: %s", note)
            return trial, data, note
        raise ValueError(f"no data to choose a threshold for the {protocol.name} protocol ({'; '.join(why)}); set "
                         "evaluate.threshold=<value> (evaluate.thresholds.<system>=<value>) or evaluate.threshold_split")

    def thresholds(self, names: Sequence[str]) -> dict[str, float | None]:
        given = dict(self.ev.get("thresholds") or {})
        out = {n: (float(given[n]) if given.get(n) is not None else None) for n in names}
        if names and self.ev.get("threshold") is not None:
            out[names[0]] = float(self.ev.threshold)
        return out


def set_metrics(data: EvalData) -> dict[str, Any]:
    """The evaluation set's keys in metrics.json."""
    return {"eval_set": data.eval_set, "eval_set_description": data.description or data.source,
            "eval_includes_training_data": data.eval_set == "all" and "no checkpoint" not in data.description,
            "n_eval_items": len(data), "n_eval_speakers": len(_speakers(data.items))}


def evaluate_checkpoint(ctx: Context, protocol: Protocol, ckpt: Any, data: EvalData | None = None,
                        name: str = "deep_hash", baselines: Sequence[str] = ()) -> tuple[Result, dict[str, Any]]:
    """One checkpoint (a path, or its already loaded Hasher) plus baselines on one retrieval protocol."""
    hasher = ctx.hasher(ckpt) if isinstance(ckpt, (str, Path)) else ckpt
    system = HashSystem(hasher, name=name, direction=ctx.ev.get("direction") or DEFAULT_DIRECTION)
    systems = [system] + build_baselines(baselines, ctx.ev, system)
    data = data if data is not None else ctx.eval_data(hasher, protocol)
    thresholds = ctx.thresholds([s.name for s in systems])
    val, note = None, ""
    if any(v is None for v in thresholds.values()):
        got = ctx.threshold_trial(hasher, protocol)
        if got is not None:
            val, vdata, note = got
            if data.eval_set != "all":  # never choose a threshold on the evaluation set
                shared = {item_keys(it)[0] for it in vdata.items} & {item_keys(it)[0] for it in data.items}
                if shared:
                    raise ValueError(f"threshold data ({vdata.source}) and evaluation set share {len(shared)} items "
                                     f"(e.g. {sorted(shared)[:5]})")
    bound = ctx.ev.get("max_threshold", 0.5)
    res = run_retrieval(protocol, systems, data, val, thresholds, ctx.out_dir,
                        str(ctx.ev.get("threshold_criterion", "f1")),
                        None if ctx.ev.get("strict") is None else bool(ctx.ev.get("strict")),
                        None if bound is None else float(bound))
    res.metrics.update(set_metrics(data))
    if val is not None:
        res.metrics["threshold_data"] = val.info.get("source", "")
    if note:
        res.metrics["threshold_note"] = note
    return res, {"hasher": hasher, "system": system, "data": data, "threshold_note": note}


def report_header(protocol_name: str, metrics: Mapping[str, Any], rest: Mapping[str, Any]) -> dict[str, Any]:
    """The report's first lines: the evaluation set (and whether it includes training data), how
    the thresholds were chosen when the validation split could not serve, then the protocol."""
    head: dict[str, Any] = {}
    if metrics.get("eval_set_description"):
        head["evaluation set"] = f"`{metrics.get('eval_set')}` — {metrics['eval_set_description']}"
    if metrics.get("threshold_note"):
        head["thresholds"] = metrics["threshold_note"]
    head["protocol"] = protocol_name
    head.update({k: v for k, v in rest.items() if k != "protocol"})
    return head


def run_evaluation(cfg: DictConfig, out_dir: str | Path | None = None) -> dict[str, Any]:
    """``evaluate.py``: run ``cfg.protocol`` and write metrics.json, plots and report.md."""
    t0 = time.perf_counter()
    out = Path(out_dir or cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(cfg, out)
    protocol = instantiate(cfg.protocol, _convert_="all")
    pname = getattr(protocol, "name", type(protocol).__name__)
    rest: dict[str, Any] = {}
    if hasattr(protocol, "run"):
        res = protocol.run(ctx)
        rest.update(getattr(protocol, "describe", lambda: {})())
    else:
        ckpts = resolve_checkpoints(cfg.get("ckpt"))
        if len(ckpts) != 1:
            raise ValueError(f"protocol {protocol.name} evaluates one checkpoint: give ckpt=<path> "
                             f"(got {len(ckpts)}: {[str(c) for c in ckpts][:5]})")
        res, info = evaluate_checkpoint(ctx, protocol, ckpts[0], baselines=list(cfg.evaluate.get("baselines") or []))
        rest.update(protocol.describe())
        rest.update(info["system"].describe())
        rest["checkpoint"] = str(ckpts[0])
        rest["evaluation data"] = f"{info['data'].source}, {len(info['data'])} items"
        if info["data"].skipped:
            rest["skipped files"] = len(info["data"].skipped)
            res.metrics["n_skipped_files"] = len(info["data"].skipped)
        res.metrics["ckpt"] = str(ckpts[0])
    res.metrics["wall_s"] = round(time.perf_counter() - t0, 2)
    rest["wall time"] = f"{res.metrics['wall_s']:.1f} s"
    header = report_header(pname, res.metrics, rest)
    paths = write_outputs(out, res, f"speechret evaluation — {pname}", header)
    print(f"[speechret] evaluation written to {out} (metrics.json, report.md, {len(res.plots)} plots)")
    if res.metrics.get("eval_set"):
        print(f"[speechret] evaluation set: {res.metrics['eval_set']} — {res.metrics.get('eval_set_description', '')}")
    keys = ("map", "precision", "recall", "f1", "threshold", "identity_recall", "keyword_recall", "n_queries",
            "pesq_encrypted", "pesq_decrypted", "decrypt_bit_exact", "hash_lengths")
    shown = {k: res.metrics[k] for k in keys if k in res.metrics}
    print(f"[speechret] {shown}")
    return {"metrics": res.metrics, "out_dir": out, "metrics_file": paths["metrics"], "report": paths["report"]}
