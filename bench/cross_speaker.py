"""Cross-speaker retrieval on DSPSpeech-20: a speaker-disjoint k-fold run -> reports/cross_speaker.md.

    python bench/cross_speaker.py [--quick] [--reuse] [--experiment speechret_hash] [--epochs N]
                                  [--papers [lstm_hash crnn_hash]] [--paper-epochs 10]
                                  [--train-args trainer=gpu] [--dsp-root ../shared/data/dspspeech20]

The 24 speakers are shuffled once (``--seed``) and cut into ``--folds`` folds of 24 / folds test
speakers; each fold validates on the next ``--val-speakers`` speakers of the shuffled ring and
trains on the rest (``data.test_speakers`` / ``data.val_speakers``). Checkpoints (best ``val/map``)
and thresholds (``evaluate.threshold_split=val``) are chosen on the validation speakers only; every
figure is measured on the fold's test speakers (``evaluate.set=test``: the checkpoint's own test
split, disjoint from its training and validation speakers by construction).

The report gives:

* mean ± sd cross-speaker mAP over the folds at 128 bits, and P / R / F1 at the validation-chosen
  threshold (``protocol=cross_speaker``: queries and database from different test speakers), for
  the 10 Mandarin words (ids 0-9) and for all 20 words;
* the 20-word models asked only about the 10 Mandarin words (``evaluate.labels``: queries and
  database restricted to them), beside the models trained on those 10 words alone;
* 64 / 256 / 384 bits on fold 0 (10 Mandarin words; with the 128-bit run of that fold);
* CPO robustness on fold 0: mean BER between a test utterance's code and its code after MP3
  128 kbps, 8-bit re-quantization, ±3 dB and 30 dB Gaussian noise (``protocol=cpo_retrieval``);
* the confusion between the near-homophone pairs 北京/背景, 上海/商行, 复旦/饭店, 语音/语言: the
  share of a pair word's queries whose nearest other-speaker item (Hamming) is its partner word;
* each test speaker's own cross-speaker mAP (its queries against the other test speakers);
* training time on this machine;
* with ``--refit``: each 128-bit fold trained again on its training *and* validation speakers (no
  validation loop, the same step budget, the last checkpoint; the threshold is the one the fold's
  standard run chose on its validation speakers), measured on the same test speakers — what a model
  trained on every voice one has gives on new ones; the standard figures stay the headline;
* with ``--papers``: each paper's classification hash model (``lstm_hash``, ``crnn_hash``) on fold 0,
  10 Mandarin words, trained with its paper's settings and with ``recipe=speechret``.

``--shard I/N`` splits the plan between N processes (each with ``OMP_NUM_THREADS=1``: on a small
CPU two 1-thread trainings do more work than one 2-thread training); a last run with ``--reuse``
and no ``--shard`` then reuses every result and writes the report.

Profiles: ``--quick`` (folds 0 and 1 on the 10 Mandarin words with the CPO, near-homophone and
DTW tables; no 20-word run, no bit sweep) and the full one (every fold on 10 and 20 words, plus the
bit sweep: 11 trainings). Their time on 2 CPU cores is set by the experiment's step budget: at
``speechret_hash``'s 4200 steps one training takes about 13 min on 2 threads (the "Done when" run,
2026-12-07), and two 1-thread trainings side by side about 22 min, so ``--quick`` takes about 31 min
(17.7 min measured at 2100 steps) and the full profile about 2.4 h as two ``--shard`` processes
(about 2.6 h serially); these two are estimates from single runs. ``--train-args
trainer.max_steps=2100`` halves the trainings. ``--reuse`` skips every training or evaluation
whose result exists for the same command, composed config and checkpoint
(``reproduce_common.run_digest``), so an interrupted run continues where it stopped and a changed
default is trained again rather than reused.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_common import REPO, Runner, default_dsp_root, fmt, parse_shard, table, write_report  # noqa: E402

from speechret.data.corpora import load_corpus  # noqa: E402
from speechret.data.duplicates import unique_items  # noqa: E402
from speechret.evaluate.runner import ONE_VIEW  # noqa: E402
from speechret.hashing.hasher import Hasher  # noqa: E402
from speechret.audio import load_audio  # noqa: E402
from speechret.hashing import ber_matrix  # noqa: E402
from speechret.metrics import nearest_shares  # noqa: E402

MANDARIN_10 = list(range(10))
#: the papers' classification hash experiments the recipe applies to (paper C's CTC models: issue 13)
PAPER_EXPERIMENTS = ("lstm_hash", "crnn_hash")
RECIPES = {"paper": [], "paper + recipe=speechret": ["recipe=speechret"]}
HOMOPHONES = [("北京", "背景"), ("上海", "商行"), ("复旦", "饭店"), ("语音", "语言")]
CPOS = ["mp3_128k", "requant_8bit", "gain_-3dB", "gain_+3dB", "gaussian_30dB"]
CPO_NAMES = {"mp3_128k": "MP3 128k", "requant_8bit": "re-quant 8 bit", "gain_-3dB": "-3 dB", "gain_+3dB": "+3 dB",
             "gaussian_30dB": "noise 30 dB"}


def folds(speakers: list[str], k: int, n_val: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """``(test, val)`` speakers of each fold: a seeded shuffle cut into k test blocks; the val
    speakers follow the test block on the ring, so no fold validates on its own test speakers."""
    ring = sorted(speakers)
    random.Random(seed).shuffle(ring)
    n_test = len(ring) // k
    out = []
    for f in range(k):
        test = ring[f * n_test:(f + 1) * n_test]
        val = [ring[(f * n_test + n_test + i) % len(ring)] for i in range(n_val)]
        out.append((sorted(test), sorted(val)))
    return out


def homophone_confusion(ckpt: str, root: str, test_speakers: list[str], words: set[str],
                        views: str = "checkpoint") -> dict[str, float]:
    """Per near-homophone pair (both words in ``words``): the share of its words' test utterances
    whose nearest item from another test speaker (Hamming / BER on the checkpoint's codes, with
    ``views`` as ``evaluate.views``) is the partner word, items tied at the nearest distance
    sharing the count (:func:`speechret.metrics.nearest_shares`); ``nan`` when a pair is not in the
    vocabulary."""
    hasher = Hasher.from_checkpoint(ckpt, views=views)
    items = unique_items([it for it in load_corpus("dspspeech20", root) if it.speaker in set(test_speakers)
                          and it.text in {w for p in HOMOPHONES for w in p} and it.text in words],
                         "the near-homophone items")  # one item per recording, as the evaluation counts
    if not items:
        return {}
    codes = hasher.codes_of_waves([load_audio(it.path, hasher.sample_rate) for it in items])
    d = hasher.hashing.distances(codes, codes)
    spk = np.array([it.speaker for it in items])
    return homophone_shares(np.asarray(d), np.array([it.text for it in items]), spk)


def homophone_shares(distances: np.ndarray, text: np.ndarray, speakers: np.ndarray) -> dict[str, float]:
    """:func:`homophone_confusion` on a distance matrix: for each pair of :data:`HOMOPHONES` present,
    the mean over its words' items of the share of their nearest other-speaker items (ties shared)
    that are the partner word."""
    shares = nearest_shares(distances, exclude=speakers[:, None] == speakers[None, :])
    out = {}
    for a, b in HOMOPHONES:
        sel = (text == a) | (text == b)
        if sel.any():
            partner = np.where(text[sel] == a, b, a)
            out[f"{a}/{b}"] = float((shares[sel] * (text[None, :] == partner[:, None])).sum(1).mean())
    return out


def cross_speaker(runner: Runner, name: str, ckpt: str, extra: list[str], views: list[str]
                  ) -> tuple[dict, dict | None]:
    """``protocol=cross_speaker`` on ``ckpt`` with ``views``, and again with one view when the run
    has test-time views (the views' share of the figure; ``None`` otherwise)."""
    m = runner.evaluate(f"{name}_cross_speaker", [f"ckpt_path={ckpt}", "protocol=cross_speaker", *extra, *views])
    one = None
    if m.get("views", ONE_VIEW) != ONE_VIEW:
        one = runner.evaluate(f"{name}_cross_speaker_one_view",
                              [f"ckpt_path={ckpt}", "protocol=cross_speaker", *extra, "evaluate.views=none"])
    return m, one


def refit(runner: Runner, name: str, train_args: list[str], threshold: float | None,
          views: list[str]) -> dict:
    """One fold trained again on its training + validation speakers (``data.val_speakers=[]``: the
    split keeps the named test speakers out and puts every other speaker in training), for the
    same step budget, and measured with its last checkpoint on the same test speakers. Nothing is
    chosen on the test speakers: the budget and every other setting were chosen on the validation
    speakers beforehand, and the P / R / F1 threshold is ``threshold``, the one the fold's standard
    run chose on its validation speakers (``evaluate.threshold``). This is the usual last step of
    model selection (refit on all the development data with the selected settings: Hastie,
    Tibshirani & Friedman, *The Elements of Statistical Learning*, 2nd ed., 2009, sect. 7.10;
    scikit-learn's ``GridSearchCV(refit=True)``)."""
    summary = runner.train(name, [*train_args, "data.val_speakers=[]"], checkpoint="last")
    ckpt = summary["last_checkpoint"]
    given = [] if threshold is None else [f"evaluate.threshold={threshold}"]
    m, one = cross_speaker(runner, name, ckpt, given, views)
    return {"map": m.get("map"), "precision": m.get("precision"), "recall": m.get("recall"), "f1": m.get("f1"),
            "threshold": m.get("threshold"), "train_s": summary.get("wall_time_s"), "ckpt": ckpt,
            "steps": summary.get("global_step"), "map_one_view": None if one is None else one.get("map")}


def refit_section(results: dict[tuple[int, str, int], dict]) -> str:
    """The refit table: each fold's standard and refit figures side by side, then the mean per vocabulary."""
    runs = [(k, r) for k, r in sorted(results.items()) if r.get("refit")]
    if not runs:
        return ""
    rows = [[f"fold {k[0]}", k[1], fmt(r["map"]), fmt(r["refit"]["map_one_view"]), fmt(r["refit"]["map"]),
             fmt(r["refit"]["precision"]), fmt(r["refit"]["recall"]), fmt(r["refit"]["f1"]), fmt(r["refit"]["threshold"]),
             str(r["refit"]["steps"]), f"{r['refit']['train_s'] / 60:.1f} min"] for k, r in runs]
    for v in dict.fromkeys(k[1] for k, _ in runs):
        pairs = [(r["map"], r["refit"]["map"]) for k, r in runs if k[1] == v
                 and r["map"] is not None and r["refit"]["map"] is not None]
        if len(pairs) > 1:
            std, ref = zip(*pairs)
            rows.append([f"mean ± sd ({len(pairs)} folds)", v, f"{statistics.mean(std):.4f} ± {statistics.stdev(std):.4f}",
                         "", f"{statistics.mean(ref):.4f} ± {statistics.stdev(ref):.4f}", "", "", "", "", "", ""])
    return (table(["fold", "vocabulary", "mAP (standard)", "refit mAP, one view", "refit mAP", "P", "R", "F1",
                   "threshold (standard run's)", "steps", "training"], rows)
            + "\n\nEach fold trained again on its training and validation speakers together (`--refit`: "
              "`data.val_speakers=[]`, the same number of steps, no validation loop, the last checkpoint) and measured "
              "on the same test speakers, which it never trained on. The budget and every setting were chosen on "
              "the validation speakers before; the threshold is the standard run's (chosen on its validation "
              "speakers). The validation speakers are training speakers here, so this table cannot choose "
              "anything: it shows what the recipe gives with every voice one has.")


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="folds 0 and 1 on the 10 Mandarin words, no 20-word runs, no bit sweep (under an hour on 2 cores)")
    p.add_argument("--reuse", action="store_true",
                   help="skip runs whose result exists for the same command, composed config and checkpoint")
    p.add_argument("--experiment", default="speechret_hash")
    p.add_argument("--epochs", type=int, default=None,
                   help="trainer.max_epochs, with the experiment's step budget (trainer.max_steps) lifted "
                        "(default: the experiment's own length)")
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--val-speakers", type=int, default=4)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--out", default=None, help="run folder (default logs/cross_speaker/<experiment>)")
    p.add_argument("--report", default="reports/cross_speaker.md")
    p.add_argument("--train-args", nargs="*", default=[])
    p.add_argument("--eval-args", nargs="*", default=[])
    p.add_argument("--dsp-root", default=default_dsp_root())
    p.add_argument("--papers", nargs="*", default=None, metavar="EXPERIMENT",
                   help="also train these papers' experiments on fold 0 (10 Mandarin words) with and without "
                        f"recipe=speechret (no names: {' '.join(PAPER_EXPERIMENTS)})")
    p.add_argument("--paper-epochs", type=int, default=10, help="trainer.max_epochs of every paper run (both arms)")
    p.add_argument("--papers-only", action="store_true",
                   help="run only the papers' comparison (e.g. beside a running main profile); the report is "
                        "written by a later run with --reuse")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="run only every N-th training of the plan, from the I-th (0-based): N processes with "
                        "OMP_NUM_THREADS=1 share the cores better than one; a last run with --reuse writes the report")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: report the runs that finished (reused even when their command or config "
                        "changed since, said so), list the others as not run; finished evaluations are reused the "
                        "same way, missing ones run")
    p.add_argument("--views", default="checkpoint",
                   help="evaluate.views of every evaluation: checkpoint (the run config's own test-time views), "
                        "none, or a conf/views name (e.g. speed5 on checkpoints trained before views existed); "
                        "with views, each cross-speaker figure is also measured with one view")
    p.add_argument("--refit", action="store_true",
                   help="also train each 128-bit fold on its training + validation speakers (fixed step budget, "
                        "last checkpoint, the standard run's validation-chosen threshold) and report it beside")
    p.add_argument("--timing-note", default="", help="how the runs shared the machine (a sentence for the report)")
    args = p.parse_args()
    shard = parse_shard(p, args.shard)
    if args.papers is not None and not args.papers:
        args.papers = list(PAPER_EXPERIMENTS)
    if args.papers_only and not args.papers:
        p.error("--papers-only needs --papers")

    started = time.time()
    out = Path(args.out or REPO / "logs" / "cross_speaker" / args.experiment)
    runner = Runner(out, reuse=args.reuse, train_args=args.train_args, eval_args=args.eval_args,
                    report_only=args.report_only)
    corpus = load_corpus("dspspeech20", args.dsp_root)
    speakers = sorted({it.speaker for it in corpus})
    word_of = {it.label: it.text for it in corpus}
    all_folds = folds(speakers, args.folds, args.val_speakers, args.seed)
    vocab = {"10 Mandarin words": MANDARIN_10, "20 words": sorted(word_of)}
    if args.quick:
        plan = [(0, "10 Mandarin words", 128), (1, "10 Mandarin words", 128)]
    else:
        plan = [(f, v, 128) for v in vocab for f in range(args.folds)]
        plan += [(0, "10 Mandarin words", b) for b in (64, 256, 384)]
    data = ["data=dspspeech20", f"data.root={args.dsp_root}"]
    epochs = [f"trainer.max_epochs={args.epochs}", "trainer.max_steps=-1"] if args.epochs else []

    not_run: list[str] = []
    papers: dict[tuple[str, str], dict] = {}
    mandarin = ",".join(str(x) for x in MANDARIN_10)
    views = [] if args.views == "checkpoint" else [f"evaluate.views={args.views}"]
    results: dict[tuple[int, str, int], dict] = {}
    for i, (f, v, bits) in enumerate([] if args.papers_only else plan):
        if i % shard[1] != shard[0]:
            continue
        test, val = all_folds[f]
        name = f"fold{f}_{len(vocab[v])}w_{bits}b"
        if args.report_only and not (runner.out / "train" / name / "summary.json").is_file():
            not_run.append(f"fold {f}, {v}, {bits} bits")
            continue
        labels = ",".join(str(x) for x in vocab[v])
        summary = runner.train(name, [f"experiment={args.experiment}", *data, f"data.labels=[{labels}]",
                                      f"data.test_speakers=[{','.join(test)}]",
                                      f"data.val_speakers=[{','.join(val)}]", f"model.hash_bits={bits}", *epochs])
        ckpt = summary["best_checkpoint"]
        m, one = cross_speaker(runner, name, ckpt, [], views)
        res = {"map": m.get("map"), "precision": m.get("precision"), "recall": m.get("recall"), "f1": m.get("f1"),
               "threshold": m.get("threshold"), "epochs": summary.get("epochs"),
               "val_map": summary.get("metrics", {}).get("best/val/map"),
               "val_xmap": summary.get("metrics", {}).get("val/map_cross_speaker"),
               "train_s": summary.get("wall_time_s"), "n_queries": m.get("n_queries"),
               "n_eval_speakers": m.get("n_eval_speakers"), "ckpt": ckpt,
               "by_speaker": {s: m.get(f"query_speaker.{s}.map") for s in test},
               "views": m.get("views"), "map_one_view": None if one is None else one.get("map")}
        if v == "20 words" and bits == 128:  # the same model asked only about the 10 Mandarin words
            m10 = runner.evaluate(f"{name}_cross_speaker_mandarin10",
                                  [f"ckpt_path={ckpt}", "protocol=cross_speaker", f"evaluate.labels=[{mandarin}]", *views])
            res["mandarin10"] = {k: m10.get(k) for k in ("map", "precision", "recall", "f1")}
        if bits == 128 and f == 0:
            res["homophones"] = homophone_confusion(ckpt, args.dsp_root, test, {word_of[x] for x in vocab[v]},
                                                    args.views)
            if v == "10 Mandarin words":
                # the baseline's own figures (the deep hash's row of this table is the main evaluation's):
                # no views, so the slow DTW evaluation is shared by every --views
                d = runner.evaluate(f"{name}_dtw", [f"ckpt_path={ckpt}", "protocol=cross_speaker", "evaluate.baselines=[dtw]"])
                res["dtw"] = {k: d.get(f"mfcc_dtw.{k}") for k in ("map", "precision", "recall", "f1")}
                c = runner.evaluate(f"{name}_cpo", [f"ckpt_path={ckpt}", "protocol=cpo_retrieval",
                                                    f"protocol.cpos=[{','.join(CPOS)}]", *views])
                res["cpo_ber"] = {x: c.get(f"ber_mean.{x}") for x in CPOS}
        if args.refit and bits == 128 and args.report_only and not (
                runner.out / "train" / f"{name}_refit" / "summary.json").is_file():
            not_run.append(f"fold {f}, {v}, refit on training + validation speakers")
        elif args.refit and bits == 128:
            # the same number of optimiser steps as the standard run: the experiment's own step budget, or
            # under --epochs (an epoch budget; the refit's epochs are longer) the steps the standard run took
            budget = ([f"trainer.max_steps={summary['global_step']}", "trainer.max_epochs=-1"]
                      if args.epochs else [])
            res["refit"] = refit(runner, f"{name}_refit", [f"experiment={args.experiment}", *data,
                                 f"data.labels=[{labels}]", f"data.test_speakers=[{','.join(test)}]",
                                 f"model.hash_bits={bits}", *budget], res["threshold"], views)
        results[(f, v, bits)] = res
        (out / "results.json").write_text(json.dumps({f"{k[0]}|{k[1]}|{k[2]}": r for k, r in results.items()},
                                                     indent=1, ensure_ascii=False))

    # the papers' arms after speechret's own runs, spread over the shards like them
    paper_plan = [(exp, recipe) for exp in (args.papers or []) for recipe in RECIPES]
    for j, (exp, recipe) in enumerate(paper_plan):
        if j % shard[1] != shard[0]:
            continue
        test, val = all_folds[0]
        extra = RECIPES[recipe]
        name = f"paper_{exp}_{'recipe' if extra else 'plain'}"
        if args.report_only and not (runner.out / "train" / name / "summary.json").is_file():
            not_run.append(f"{exp} with {recipe}, fold 0, 10 Mandarin words")
            continue
        summary = runner.train(name, [f"experiment={exp}", *data, f"data.labels=[{mandarin}]",
                                      f"data.test_speakers=[{','.join(test)}]",
                                      f"data.val_speakers=[{','.join(val)}]", *extra,
                                      f"trainer.max_epochs={args.paper_epochs}"])
        m = runner.evaluate(f"{name}_cross_speaker", [f"ckpt_path={summary['best_checkpoint']}",
                                                      "protocol=cross_speaker"])
        papers[(exp, recipe)] = {"map": m.get("map"), "precision": m.get("precision"), "recall": m.get("recall"),
                                 "f1": m.get("f1"), "epochs": summary.get("epochs"),
                                 "train_s": summary.get("wall_time_s"), "bits": summary.get("hash_bits")}
    if shard[1] > 1 or args.papers_only:
        return
    def mean_sd(runs: list[dict], key: str) -> str:
        xs = [r[key] for r in runs if r.get(key) is not None]
        if not xs:
            return "–"
        sd = statistics.stdev(xs) if len(xs) > 1 else float("nan")
        return f"{statistics.mean(xs):.4f} ± {sd:.4f}" if math.isfinite(sd) else f"{xs[0]:.4f}"

    sections = []
    rows = []
    for v in vocab:
        runs = [results[k] for k in results if k[1] == v and k[2] == 128]
        if not runs:
            continue
        rows.append([v, str(len(runs)), *[mean_sd(runs, m) for m in ("map", "precision", "recall", "f1")],
                     f"{statistics.mean(r['train_s'] for r in runs) / 60:.1f} min"])
        sub = [r["mandarin10"] for r in runs if r.get("mandarin10")]
        if sub:
            rows.append(["10 Mandarin words, by the 20-word models", str(len(sub)),
                         *[mean_sd(sub, m) for m in ("map", "precision", "recall", "f1")], "(same runs)"])
    sections.append(("Cross-speaker retrieval at 128 bits (mean ± sd over folds)",
                     table(["vocabulary", "folds", "mAP", "precision", "recall", "F1", "training time / run"], rows)
                     + "\n\nQueries and database are the fold's test speakers, each query against the other "
                       "speakers' utterances (relevant = same word); P / R / F1 at the threshold chosen on the "
                       "validation speakers (F1-optimal)."))
    dtw = next(((k, r["dtw"]) for k, r in sorted(results.items()) if r.get("dtw")), None)
    if dtw:
        (f0, v0, b0), d = dtw
        mine = results[(f0, v0, b0)]
        sections.append((f"Against the classic baseline (fold {f0}, {v0})",
                         table(["system", "mAP", "P", "R", "F1"],
                               [[f"{args.experiment}, {b0} bits", fmt(mine["map"]), fmt(mine["precision"]),
                                 fmt(mine["recall"]), fmt(mine["f1"])],
                                ["MFCC + DTW (no training; `evaluate.baselines=[dtw]`)", fmt(d["map"]),
                                 fmt(d["precision"]), fmt(d["recall"]), fmt(d["f1"])]])
                         + "\n\nSame queries, database and validation-chosen thresholds (each system its own)."))
    per_fold = [[f"fold {k[0]}", k[1], str(k[2]), fmt(r.get("val_map")), fmt(r.get("val_xmap")),
                 fmt(r.get("map_one_view")), fmt(r["map"]),
                 fmt(r["precision"]), fmt(r["recall"]), fmt(r["f1"]), fmt(r["threshold"]), str(r["epochs"]),
                 f"{r['train_s'] / 60:.1f} min"]
                for k, r in sorted(results.items())]
    sections.append(("Every run", table(["fold", "vocabulary", "bits", "val mAP", "val cross-speaker mAP",
                                          "mAP, one view", "mAP", "P", "R", "F1", "threshold", "epochs", "training"],
                                         per_fold)
                     + "\n\nval mAP: the chosen checkpoint's `val/map` on the fold's validation speakers (the "
                       "selection figure; a query's own speaker's repetitions count as relevant); val cross-speaker "
                       "mAP: `val/map_cross_speaker` after the last epoch (the test protocol, on the validation "
                       "speakers; both are single-view, as train.py logs them); mAP, one view: the test figure "
                       "without the test-time views (`evaluate.views=none`; – when the run has none); every other "
                       "column is measured on the test speakers with the run's views ("
                       + (f"`evaluate.views={args.views}`" if views else "the checkpoint's own") + ")."))
    spk_rows = [[f"fold {k[0]}", k[1], ", ".join(f"{fmt(x)} ({s})" for s, x in sorted(
                    ((s, x) for s, x in r["by_speaker"].items() if x is not None), key=lambda sx: sx[1]))]
                for k, r in sorted(results.items()) if k[2] == 128 and r.get("by_speaker")]
    if spk_rows:
        sections.append(("By test speaker (128 bits)", table(["fold", "vocabulary", "mAP of each speaker's queries, "
                                                              "lowest first"], spk_rows)
                         + "\n\nThe cross-speaker mAP of one test speaker's queries against the other test "
                           "speakers (`query_speaker.<speaker>.map` of `protocol=cross_speaker`): the fold's mean "
                           "can hide a voice the model fails on."))
    sweep = [[str(k[2]), fmt(r["map"]), fmt(r["f1"])] for k, r in sorted(results.items())
             if k[0] == 0 and k[1] == "10 Mandarin words"]
    if len(sweep) > 1:
        sections.append(("Hash length (fold 0, 10 Mandarin words)", table(["bits", "mAP", "F1"], sweep)))
    cpo = next((r["cpo_ber"] for r in results.values() if r.get("cpo_ber")), None)
    if cpo:
        sections.append(("CPO robustness (fold 0, 10 Mandarin words, 128 bits)",
                         table(["CPO", "mean BER to the clean code"], [[CPO_NAMES[c], fmt(cpo[c])] for c in CPOS])))
    homo = [(k, r["homophones"]) for k, r in sorted(results.items()) if r.get("homophones")]
    if homo:
        pairs = [f"{a}/{b}" for a, b in HOMOPHONES]
        sections.append(("Near-homophone confusion (fold 0, 128 bits)",
                         table(["vocabulary", *pairs], [[k[1], *[fmt(h.get(pq)) for pq in pairs]] for k, h in homo])
                         + "\n\nShare of a pair word's test utterances whose nearest item from another test "
                           "speaker is the partner word (0 = never confused)."))
    refit_text = refit_section(results)
    if refit_text:
        sections.append(("Refit: trained on the training and validation speakers", refit_text))
    if papers:
        rows = [[exp, recipe, str(r["bits"]), fmt(r["map"]), fmt(r["precision"]), fmt(r["recall"]), fmt(r["f1"]), str(r["epochs"]),
                 f"{r['train_s'] / 60:.1f} min"] for (exp, recipe), r in papers.items()]
        sections.append(("The papers' models with and without the recipe (fold 0, 10 Mandarin words)",
                         table(["experiment", "training", "bits", "mAP", "P", "R", "F1", "epochs", "time"], rows)
                         + f"\n\nEach paper's own network, features, optimiser and code length, trained "
                           f"{args.paper_epochs} epochs (both arms alike, fewer than the papers' to fit 2 CPU "
                           "cores) with its paper's settings and with `recipe=speechret` (isolated-word trimming, "
                           "waveform augmentation with speed 0.75-1.35, SpecAugment with a VTLP warp, one-cycle "
                           "schedule, label smoothing 0.1; conf/recipe/speechret.yaml); checkpoint and threshold chosen on the validation "
                           "speakers, measured on fold 0's test speakers as above."))
    if not_run:
        sections.append(("Not run", "These runs of the plan did not finish in the session that wrote this report "
                                    "(`--report-only`); `--reuse` without it trains them:\n\n"
                         + "\n".join(f"- {x}" for x in not_run)))
    fold_rows = [[f"fold {i}", ", ".join(t), ", ".join(vv)] for i, (t, vv) in enumerate(all_folds)]
    sections.append(("Folds (speakers)", table(["fold", "test speakers", "validation speakers"], fold_rows)))
    intro = (f"`{args.experiment}` on DSPSpeech-20 (24 real speakers, 12 Mandarin + 8 English words), speaker-disjoint "
             f"{args.folds}-fold: each fold tests on {len(all_folds[0][0])} speakers, validates on "
             f"{args.val_speakers} others and trains on the rest. Checkpoints and thresholds come from the "
             "validation speakers only; every figure is measured on the fold's test speakers, which the "
             "checkpoint never trained or validated on." + (f" Timing: {args.timing_note}" if args.timing_note else ""))
    write_report(REPO / args.report, "Cross-speaker retrieval (speaker k-fold)", intro, sections, runner,
                 "quick" if args.quick else "full", started,
                 training_cpos=f"the `{args.experiment}` experiment's own augmentation (see conf/experiment)")


if __name__ == "__main__":
    main()
