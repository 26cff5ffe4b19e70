"""Paper C's models on real speech: DSPSpeech-20's 12 Mandarin words, speaker-disjoint (issue 13).

    python bench/paper_c_words.py [--models bilstm_ctc_baseline cnn3d_bilstm_ctc_cpu biconvlstm_ctc_cpu]
                                  [--fold 0] [--epochs 30] [--reuse] [--shard I/N] [--report-only]
                                  [--train-args trainer=gpu] [--dsp-root ../shared/data/dspspeech20]

Every model trains on fold ``--fold`` of ``bench/cross_speaker.py``'s speaker-disjoint folds (the
same seeded shuffle: 6 test speakers, the next 4 on the ring validate, 14 train) on the 12
Mandarin words (ids 0-11, tone-numbered pinyin -> paper C's 27 pronunciation classes), with
``recipe=speechret_ctc`` (silence trimming, augmentation, warm-up + cosine; paper C trains on
sentences, where CTC has frames to spare: isolated two-syllable words are mostly silence) unless
``--recipe none``. Checkpoints (best ``val/map``) and thresholds (``evaluate.threshold_split=val``)
come from the validation speakers only; every figure is measured on the fold's test speakers:

* test PER (greedy CTC decoding against the 27-class targets) and the first epoch whose validation
  PER is at or below ``--per-target`` (paper C's "fewer iterations");
* ``protocol=cross_speaker`` with sliding matching (paper C §4.4: grouped 27-bit codes, ``≤ γ``):
  mAP, Ap (precision of what is retrieved) and recall at the validation-chosen γ; relevant = the
  same word by another test speaker. 北京/背景 (bei jing) share their toneless pronunciation, which
  is all paper C's 27 classes encode, so the pair is indistinguishable to every paper-C code by
  construction: the table also gives mAP over the 10 words without that pair
  (``evaluate.labels``), which is what the codes can be asked;
* ``protocol=keyword`` (Fig. 10): single-word queries by one test speaker against utterances of 2-4
  words concatenated from the other test speakers' recordings; keyword precision / recall at the
  validation-chosen γ and mAP;
* MFCC + DTW on the same cross-speaker protocol (no training), for scale.

Writes ``reports/paper_c_words.md``. ``--shard I/N`` trains only every N-th model from the I-th
(each process with ``OMP_NUM_THREADS=1``); a last run with ``--reuse`` evaluates and reports.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cross_speaker import folds  # noqa: E402
from reproduce_common import REPO, Runner, default_dsp_root, fmt, parse_shard, table, write_report  # noqa: E402
from reproduce_paper_c import NAMES, epochs_to_per  # noqa: E402

from speechret.data.corpora import load_corpus  # noqa: E402

MANDARIN_12 = list(range(12))
#: 北京 (bei3 jing1) / 背景 (bei4 jing3): one toneless pronunciation, the same paper-C code
TONE_ONLY_PAIR = (6, 7)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", default=["bilstm_ctc_baseline", "cnn3d_bilstm_ctc_cpu", "biconvlstm_ctc_cpu"])
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--val-speakers", type=int, default=4)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--recipe", default="speechret_ctc", help="recipe=... for every model (none: the paper's)")
    p.add_argument("--per-target", type=float, default=0.30)
    p.add_argument("--reuse", action="store_true")
    p.add_argument("--shard", default=None, metavar="I/N", help="train only models I, I+N, ... (no report)")
    p.add_argument("--report-only", action="store_true", help="report what exists; train nothing new")
    p.add_argument("--out", default=None, help="run folder (default logs/paper_c_words)")
    p.add_argument("--report", default="reports/paper_c_words.md")
    p.add_argument("--train-args", nargs="*", default=[])
    p.add_argument("--eval-args", nargs="*", default=[])
    p.add_argument("--dsp-root", default=default_dsp_root())
    args = p.parse_args()
    shard = parse_shard(p, args.shard)

    started = time.time()
    run = Runner(Path(args.out or REPO / "logs" / "paper_c_words"), reuse=args.reuse or args.report_only,
                 train_args=args.train_args, eval_args=args.eval_args)
    speakers = sorted({it.speaker for it in load_corpus("dspspeech20", args.dsp_root)})
    test, val = folds(speakers, args.folds, args.val_speakers, args.seed)[args.fold]
    labels = ",".join(map(str, MANDARIN_12))
    ten = ",".join(str(x) for x in MANDARIN_12 if x not in TONE_ONLY_PAIR)
    data = ["data=dspspeech20", f"data.root={args.dsp_root}", f"data.labels=[{labels}]",
            f"data.test_speakers=[{','.join(test)}]", f"data.val_speakers=[{','.join(val)}]"]
    recipe = [] if args.recipe == "none" else [f"recipe={args.recipe}"]

    trained: dict[str, dict] = {}
    for i, exp in enumerate(args.models):
        if i % shard[1] != shard[0]:
            continue
        if args.report_only and not (run.out / "train" / exp / "summary.json").is_file():
            continue
        trained[exp] = run.train(exp, [f"experiment={exp}", *data, *recipe, f"trainer.max_epochs={args.epochs}"])
    if args.shard:
        return

    rows, kw_rows, notes = [], [], []
    dtw = None
    for exp, s in trained.items():
        ck = f"ckpt_path={s['best_checkpoint']}"
        cross = run.evaluate(f"{exp}_cross_speaker", [ck, "protocol=cross_speaker"])
        cross10 = run.evaluate(f"{exp}_cross_speaker_10", [ck, "protocol=cross_speaker", f"evaluate.labels=[{ten}]"])
        kw = run.evaluate(f"{exp}_keyword", [ck, "protocol=keyword"])
        if dtw is None:
            dtw = run.evaluate("mfcc_dtw_cross_speaker", [ck, "protocol=cross_speaker", "evaluate.baselines=[dtw]"])
        reached = epochs_to_per(run.out / "train" / exp, args.per_target)
        rows.append([NAMES.get(exp, exp), str(s["epochs"]), fmt(s["metrics"].get("val/per")),
                     fmt(s["metrics"].get("test/per")), str(reached) if reached is not None else f"not within {s['epochs']}",
                     fmt(cross.get("map")), fmt(cross10.get("map")), fmt(cross.get("ap"), pct=True),
                     fmt(cross.get("recall"), pct=True), fmt(cross.get("threshold"))])
        kw_rows.append([NAMES.get(exp, exp), fmt(kw.get("keyword_precision"), pct=True),
                        fmt(kw.get("keyword_recall"), pct=True), fmt(kw.get("map")), fmt(kw.get("threshold"))])
    if dtw is not None:
        rows.append(["MFCC + DTW (no training)", "–", "–", "–", "–", fmt(dtw.get("mfcc_dtw.map")), "–",
                     fmt(dtw.get("mfcc_dtw.precision"), pct=True), fmt(dtw.get("mfcc_dtw.recall"), pct=True),
                     fmt(dtw.get("mfcc_dtw.threshold"))])
    sections = [
        ("Words: PER and cross-speaker retrieval with sliding matching",
         table(["model", "epochs", "val PER (best ckpt)", "test PER", f"first epoch val PER ≤ {args.per_target:.2f}",
                "mAP (12 words)", "mAP (10, without 北京/背景)", "Ap", "recall", "γ (val)"], rows)
         + "\n\nTargets (issue 13): test PER ≤ 0.15 and cross-speaker mAP ≥ 0.90 for the best paper-C model. "
           "Ap / recall at γ chosen for maximum F1 on the validation speakers. mAP ranks every other-speaker "
           "item by its sliding-matching distance."),
        ("Keyword query-by-example across speakers (paper C Fig. 10)",
         table(["model", "keyword precision", "keyword recall", "mAP", "γ (val)"], kw_rows)
         + "\n\nTarget (issue 13): recall ≥ 0.75 at precision ≥ 0.95 for the best paper-C model."),
    ]
    intro = (f"Paper C's CTC models on **real speech**: DSPSpeech-20's 12 Mandarin words, fold {args.fold} of "
             f"`bench/cross_speaker.py`'s speaker-disjoint folds: test speakers {', '.join(test)}; validation "
             f"speakers {', '.join(val)}; the other {len(speakers) - len(test) - len(val)} train. "
             f"{'`recipe=' + args.recipe + '`' if recipe else 'The papers recipe'} for every model; the SVS models "
             "in their CPU-feasible configuration (1-channel magnitude SVS at 38 x 77, fewer channels: a "
             "documented deviation, `conf/experiment/*_cpu.yaml`). No figure below includes a speaker the "
             "checkpoint trained or validated on.")
    write_report(Path(args.report), "Paper C's models on DSPSpeech-20 Mandarin words", intro, sections, run,
                 "words", started, training_cpos=f"as `recipe={args.recipe}` configures (augmentation)" if recipe
                 else "none")


if __name__ == "__main__":
    main()
