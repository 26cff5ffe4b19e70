"""The evaluation pipeline behind ``evaluate.py``.

``run_evaluation(cfg)``:

1. the *evaluation set*: every item of ``cfg.data`` (no training split, ``split=none``), restricted
   to ``evaluate.labels`` when given; unreadable files are reported and skipped;
2. the *systems*: the deep hash of ``ckpt`` (:class:`~speechret.evaluate.systems.HashSystem`) and
   the baselines of ``evaluate.baselines`` (``dtw``, ``asr``);
3. the *protocol* (``conf/protocol/``) builds a :class:`~speechret.evaluate.protocols.Trial`;
4. each system's *threshold*: ``evaluate.threshold`` / ``evaluate.thresholds.<system>`` when given,
   otherwise the F1-maximising threshold (:func:`~speechret.evaluate.metrics.choose_threshold`)
   of the same protocol run on the **validation split of the checkpoint's training data**
   (``evaluate.threshold_split``) — never on the evaluation set; the report says which;
5. distances → metrics (:mod:`speechret.evaluate.metrics`) → ``metrics.json`` (flat keys; the
   main system unprefixed, baselines as ``<system>.<key>``), PNG plots and ``report.md`` in the
   run directory.

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


def load_eval_data(data_cfg: Any, split: str = "none", labels: Sequence[int] | None = None,
                   max_items: int | None = None, seed: int = 0) -> EvalData:
    """Items of ``split`` of a data config (a ``SpeechDataModule`` config, e.g. ``cfg.data`` or the
    ``data`` section stored in a checkpoint) with their waveforms.

    ``split="none"`` takes the whole corpus as the evaluation set with its original content
    labels; ``"val"``/``"train"``/``"test"`` reproduce the training run's split (same seed).
    Files that fail to decode are skipped with a warning naming them.
    """
    d = _as_container(data_cfg)
    overrides: dict[str, Any] = {"features": None, "augment": None, "copies": None,
                                 "cache_features": False, "cache_waveforms": False}
    if split == "none":
        overrides.update(split="none", relabel=False)
    if labels is not None:
        overrides["labels"] = [int(x) for x in labels]
        overrides["relabel"] = False
    d.update(overrides)
    dm = instantiate(d, _convert_="all")
    dm.prepare_data()
    dm.setup()
    idx = list(range(len(dm.items))) if split == "none" else list(dm.split_indices.get(split, []))
    if not idx:
        raise ValueError(f"data {d.get('corpus')} at {d.get('root')}: split {split!r} is empty")
    if max_items is not None and 0 < int(max_items) < len(idx):
        rng = np.random.default_rng(seed)
        idx = sorted(rng.choice(idx, size=int(max_items), replace=False).tolist())
    items, waves, bad = [], [], []
    for i in idx:
        it = dm.items[i]
        try:
            waves.append(load_audio(it.path, dm.sample_rate))
            items.append(it)
        except AudioError as e:
            bad.append(str(e))
    for msg in bad[:20]:
        log.warning("skipped: %s", msg)
    if bad:
        log.warning("%d of %d files could not be read and were skipped", len(bad), len(idx))
    source = f"{d.get('corpus')}:{d.get('root')} ({split})"
    return EvalData(items, waves, dm.sample_rate, source, skipped=bad)


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
    D = np.asarray(system.distances(q, db, trial.mode), dtype=np.float32)
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
    groups = trial.group_names()
    g_arr = np.asarray(trial.groups, dtype=object)
    if len(groups) > 1:
        for g in groups:
            rows = np.flatnonzero(g_arr == g)
            exc = None if trial.exclude is None else trial.exclude[rows]
            m.update(_block_metrics(D[rows], trial.relevant[rows], exc, T, strict, suffix=f".{g}"))
    for view, (rel, exc) in trial.views.items():
        m.update(_block_metrics(D, rel, exc, T, strict, prefix=f"{view}."))
    paired = _paired_distance(scored.system, scored, trial)
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
        curves["intra_ber"] = paired[np.isfinite(paired)]
    return m, curves


# --------------------------------------------------------------------------------------------
# the retrieval protocols
# --------------------------------------------------------------------------------------------


def run_retrieval(protocol: Protocol, systems: Sequence[Any], data: EvalData, val: EvalData | None,
                  thresholds: Mapping[str, float | None], out_dir: Path, criterion: str = "f1",
                  strict: bool = True, max_threshold: float | None = 0.5) -> Result:
    """Every system on the protocol's trial: thresholds, metrics, plots and report sections.
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
            val_trial = protocol.build(val)  # built once, shared by every system
            val_trial.info["source"] = val.source
        th = pick_threshold(system, protocol, val_trial, thresholds.get(system.name), criterion, max_threshold)
        s = score(system, trial)
        m, curves = trial_metrics(s, trial, th["threshold"], strict, inter_class=protocol.inter_class)
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
                title=f"{system.name}: BER of different content (paper A Fig. 7)"))
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
                  m.get("theory_ber_std", float("nan")), m["inter_ber_n"]] for n, m in far_rows.items()]
        res.sections.append(("Inter-class BER and FAR (paper A §5.2, eq. 13)",
                             markdown_table(["system", "mean μ", "std σ", "min", "max", "theory σ", "pairs"], stats)
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
    """What a study needs from the run: config, output folder and loaders."""

    cfg: Any
    out_dir: Path

    @property
    def ev(self) -> Any:
        return self.cfg.evaluate

    def hasher(self, ckpt: str | Path):
        from speechret.hasher import Hasher

        return Hasher.from_checkpoint(ckpt, device=str(self.ev.get("device", "cpu")),
                                      batch_size=int(self.ev.get("batch_size", 32)))

    def eval_data(self, hasher: Any | None = None) -> EvalData:
        data_cfg = self.cfg.get("data")
        if not data_cfg:
            if hasher is None or "data" not in (hasher.config or {}):
                raise ValueError("no evaluation data: give data=<config> (e.g. data=dspspeech20 data.root=...)")
            data_cfg = hasher.config["data"]
            log.info("evaluation data: the checkpoint's training corpus (all of it)")
        return load_eval_data(data_cfg, "none", self.ev.get("labels"), self.ev.get("max_items"),
                              int(self.cfg.get("seed") or 0))

    def val_data(self, hasher: Any) -> EvalData | None:
        """The validation split(s) of the checkpoint's training data (for the thresholds)."""
        split = self.ev.get("threshold_split", "val")
        if not split:
            return None
        splits = [split] if isinstance(split, str) else list(split)
        data_cfg = dict((hasher.config or {}).get("data") or {})
        if not data_cfg:
            raise ValueError("the checkpoint holds no data config to take a validation split from; "
                             "set evaluate.threshold=<value>")
        if self.ev.get("val_root"):
            data_cfg["root"] = str(self.ev.val_root)
        parts = [load_eval_data(data_cfg, s, None, None) for s in splits]
        data = EvalData([it for p in parts for it in p.items], [w for p in parts for w in p.waves],
                        parts[0].sample_rate, " + ".join(p.source for p in parts))
        return data

    def thresholds(self, names: Sequence[str]) -> dict[str, float | None]:
        given = dict(self.ev.get("thresholds") or {})
        out = {n: (float(given[n]) if given.get(n) is not None else None) for n in names}
        if names and self.ev.get("threshold") is not None:
            out[names[0]] = float(self.ev.threshold)
        return out


def evaluate_checkpoint(ctx: Context, protocol: Protocol, ckpt: Any, data: EvalData | None = None,
                        name: str = "deep_hash", baselines: Sequence[str] = ()) -> tuple[Result, dict[str, Any]]:
    """One checkpoint (a path, or its already loaded Hasher) plus baselines on one retrieval protocol."""
    hasher = ctx.hasher(ckpt) if isinstance(ckpt, (str, Path)) else ckpt
    system = HashSystem(hasher, name=name)
    systems = [system] + build_baselines(baselines, ctx.ev, system)
    data = data if data is not None else ctx.eval_data(hasher)
    thresholds = ctx.thresholds([s.name for s in systems])
    val = None if all(v is not None for v in thresholds.values()) else ctx.val_data(hasher)
    bound = ctx.ev.get("max_threshold", 0.5)
    res = run_retrieval(protocol, systems, data, val, thresholds, ctx.out_dir,
                        str(ctx.ev.get("threshold_criterion", "f1")), bool(ctx.ev.get("strict", True)),
                        None if bound is None else float(bound))
    return res, {"hasher": hasher, "system": system, "data": data}


def run_evaluation(cfg: DictConfig, out_dir: str | Path | None = None) -> dict[str, Any]:
    """``evaluate.py``: run ``cfg.protocol`` and write metrics.json, plots and report.md."""
    t0 = time.perf_counter()
    out = Path(out_dir or cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(cfg, out)
    protocol = instantiate(cfg.protocol, _convert_="all")
    header: dict[str, Any] = {"protocol": getattr(protocol, "name", type(protocol).__name__)}
    if hasattr(protocol, "run"):
        res = protocol.run(ctx)
        header.update(getattr(protocol, "describe", lambda: {})())
    else:
        ckpts = resolve_checkpoints(cfg.get("ckpt"))
        if len(ckpts) != 1:
            raise ValueError(f"protocol {protocol.name} evaluates one checkpoint: give ckpt=<path> "
                             f"(got {len(ckpts)}: {[str(c) for c in ckpts][:5]})")
        res, info = evaluate_checkpoint(ctx, protocol, ckpts[0], baselines=list(cfg.evaluate.get("baselines") or []))
        header.update(protocol.describe())
        header.update(info["system"].describe())
        header["checkpoint"] = str(ckpts[0])
        header["evaluation data"] = f"{info['data'].source}, {len(info['data'])} items"
        if info["data"].skipped:
            header["skipped files"] = len(info["data"].skipped)
            res.metrics["n_skipped_files"] = len(info["data"].skipped)
        res.metrics["ckpt"] = str(ckpts[0])
    res.metrics["wall_s"] = round(time.perf_counter() - t0, 2)
    header["wall time"] = f"{res.metrics['wall_s']:.1f} s"
    paths = write_outputs(out, res, f"speechret evaluation — {header['protocol']}", header)
    print(f"[speechret] evaluation written to {out} (metrics.json, report.md, {len(res.plots)} plots)")
    keys = ("map", "precision", "recall", "f1", "threshold", "identity_recall", "keyword_recall", "n_queries",
            "pesq_encrypted", "pesq_decrypted", "decrypt_bit_exact", "hash_lengths")
    shown = {k: res.metrics[k] for k in keys if k in res.metrics}
    print(f"[speechret] {shown}")
    return {"metrics": res.metrics, "out_dir": out, **paths}
