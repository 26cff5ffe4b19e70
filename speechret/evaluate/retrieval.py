"""One retrieval protocol run: every system scored on the same trial, then metrics, plots, sections.

For each system (the checkpoint's deep hash first, then the baselines): its threshold
(:func:`pick_threshold`: given, or the max-F1 / EER threshold of the same protocol on the threshold
data — :mod:`speechret.evaluate.eval_sets`), the distances of the protocol's trial (:func:`score`),
and the flat metrics (:func:`trial_metrics`: mAP, pooled P/R/F1, paper C's Ap, per-condition and
per-view blocks, identity retrieval, and for hashes the inter-class BER statistics and FAR of paper
A §5.2).  :func:`run_retrieval` gathers them into a :class:`~speechret.evaluate.report.Result`: the
main system's keys unprefixed, each baseline's as ``<system>.<key>``, report tables and plots.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speechret.errors import ConfigError
from speechret import metrics as M
from speechret.evaluate.protocols import EvalData, Noise, Protocol, Trial
from speechret.evaluate.report import Result, markdown_table
from speechret.hashing import ber, take

log = logging.getLogger(__name__)

FAR_TAUS = (0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16)


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


#: utterances per encode call and at most this many row blocks per distance matrix, so that the
#: progress of a long step (the DTW baseline: minutes on a full protocol) can be shown
ENCODE_CHUNK = 256
DISTANCE_BLOCKS = 20
#: below this many (query, item) pairs the distances are computed in one call
MIN_BLOCKED_PAIRS = 20_000


def _concat(system: Any, parts: list[Any]) -> Any:
    """Join the encodings of consecutive chunks of waveforms as one ``encode`` call returns them."""
    if len(parts) == 1:
        return parts[0]
    hashing = getattr(system, "hashing", None)
    if hashing is not None and hasattr(hashing, "concat"):
        return hashing.concat(parts)
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts, axis=0)
    return [x for p in parts for x in p]


def _encode(system: Any, waves: Sequence[Any], what: str) -> Any:
    """``system.encode(waves)`` in chunks of :data:`ENCODE_CHUNK`, with progress
    (:func:`speechret.utils.progress.progress`)."""
    from speechret.utils.progress import progress

    waves = list(waves)
    if len(waves) <= ENCODE_CHUNK:
        return system.encode(waves)
    parts = []
    with progress(f"{system.name}: encoding {what}", total=len(waves), logger=log) as bar:
        for start in range(0, len(waves), ENCODE_CHUNK):
            chunk = waves[start : start + ENCODE_CHUNK]
            parts.append(system.encode(chunk))
            bar.advance(len(chunk))
    return _concat(system, parts)


def _distances(system: Any, q: Any, db: Any, mode: str) -> np.ndarray:
    """``system.distances(q, db, mode)``; for large trials in blocks of query rows (each row
    depends on its query only) with progress."""
    from speechret.utils.progress import progress

    n_q, n_db = len(q), len(db)
    if n_q * n_db < MIN_BLOCKED_PAIRS or n_q < 2:
        return np.asarray(system.distances(q, db, mode))
    step = max(1, -(-n_q // DISTANCE_BLOCKS))
    rows = []
    with progress(f"{system.name}: {mode} distances, {n_q} x {n_db}", total=n_q, logger=log) as bar:
        for start in range(0, n_q, step):
            rows.append(np.asarray(system.distances(q[start : start + step], db, mode)))
            bar.advance(min(step, n_q - start))
    return np.concatenate(rows, axis=0)


def score(system: Any, trial: Trial) -> Scored:
    t0 = time.perf_counter()
    db = _encode(system, trial.db_waves, "database")
    q = _encode(system, trial.query_waves, "queries")
    t1 = time.perf_counter()
    D = _distances(system, q, db, trial.mode)
    if D.dtype != np.float64:  # float64 distances (paper C) stay exact: they are compared with γ
        D = D.astype(np.float32)
    t2 = time.perf_counter()
    return Scored(system, D, q, db, t1 - t0, t2 - t1)


def pick_threshold(system: Any, protocol: Protocol, val: EvalData | Trial | None, given: float | None,
                   criterion: str = "f1", max_threshold: float | None = None,
                   min_precision: float = 0.95) -> dict[str, Any]:
    """The system's threshold: ``given``, or the max-``criterion`` threshold of the protocol run
    on the validation data (``val``: the data, or the trial already built from it);
    ``criterion="precision"``: the highest validation recall at precision ≥ ``min_precision``
    (:func:`speechret.metrics.choose_threshold`)."""
    if given is not None:
        return {"threshold": float(given), "source": "given (evaluate.threshold)"}
    if val is None:
        raise ConfigError(f"{system.name}: no threshold given and no validation data to choose one; "
                         "set evaluate.threshold=<value> (or evaluate.thresholds.<system>=<value>)")
    trial = val if isinstance(val, Trial) else protocol.build(val)
    where = trial.info.get("source", "the validation data")
    if not trial.relevant.any():
        raise ValueError(f"{system.name}: the {protocol.name} protocol on {where} has no relevant pair to "
                         "choose a threshold; set evaluate.threshold=<value> or evaluate.threshold_split=[val,train]")
    s = score(system, trial)
    bound = max_threshold if getattr(system, "is_hash", False) else None
    c = M.choose_threshold(s.distances, trial.relevant, trial.exclude, criterion, bound, min_precision)
    how = f"max {criterion.upper()}"
    if criterion == "precision":
        how = (f"max recall at precision ≥ {min_precision:g}" if c["met"] else
               f"max precision ({c['precision']:.4f}: no threshold reaches precision {min_precision:g})")
    return {"threshold": c["threshold"], "val_f1": c["f1"], "val_precision": c["precision"],
            "val_recall": c["recall"],
            "source": f"{how} on {where}: {trial.n_queries} queries × {trial.n_database} items"}


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
    for name, parts in trial.breakdowns.items():
        parts = np.asarray(parts, dtype=str)
        for part in dict.fromkeys(parts.tolist()):
            rows = np.flatnonzero(parts == part)
            exc = None if trial.exclude is None else trial.exclude[rows]
            m.update(_block_metrics(D[rows], trial.relevant[rows], exc, T, strict, prefix=f"{name}.{part}."))
            m[f"{name}.{part}.n_queries"] = int(len(rows))
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
                  strict: bool | None = True, max_threshold: float | None = 0.5,
                  min_precision: float = 0.95) -> Result:
    """Every system on the protocol's trial: thresholds, metrics, plots and report sections.
    ``val``: the threshold data (or the trial already built on it); ``strict``: retrieved iff
    ``d < T`` (True), ``d ≤ T`` (False) or, ``None``, each system's own rule (its
    ``threshold_strict``: ``<`` for papers A and B, ``≤`` for paper C; ``<`` when it has none);
    ``max_threshold`` bounds the thresholds chosen for deep hashes (papers: 0 < T < 0.5);
    ``min_precision``: the floor of ``criterion="precision"``."""
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
        th = pick_threshold(system, protocol, val_trial, thresholds.get(system.name), criterion, max_threshold,
                            min_precision)
        s = score(system, trial)
        strict_s = bool(getattr(system, "threshold_strict", True)) if strict is None else bool(strict)
        m, curves = trial_metrics(s, trial, th["threshold"], strict_s, inter_class=protocol.inter_class)
        m["encode_s"], m["match_s"] = s.encode_s, s.match_s
        m["threshold_source"] = th["source"]
        m.update({k: th[k] for k in ("val_precision", "val_recall", "val_f1") if k in th})  # at the chosen threshold
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
    for name, parts in trial.breakdowns.items():
        brows = []
        for i, system in enumerate(systems):
            prefix = "" if i == 0 else f"{system.name}."
            for part in dict.fromkeys(np.asarray(parts, dtype=str).tolist()):
                key = f"{prefix}{name}.{part}."
                brows.append([system.name, part, res.metrics.get(key + "n_queries", 0)]
                             + [res.metrics.get(key + k, float("nan")) for k in ("map", "precision", "recall", "f1")])
        res.sections.append((f"By {name.replace('_', ' ')}", markdown_table(
            ["system", name.replace("_", " "), "queries", "mAP", "precision", "recall", "F1"], brows)
            + "\n\nThe main relevance and threshold, over that part's queries only."))
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
    if isinstance(protocol, Noise):
        _noise_section(protocol, systems, res, out_dir)
    return res


def _noise_section(protocol: Noise, systems: Sequence[Any], res: Result, out_dir: Path) -> None:
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

