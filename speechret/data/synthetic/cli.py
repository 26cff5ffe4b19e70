"""Command line of the synthetic corpus generator (``python -m speechret.data.synthetic``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .corpus import generate_corpus
from .espeak import SynthesisError
from .voices import SAMPLE_RATE

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m speechret.data.synthetic",
        description="Generate the built-in synthetic Mandarin corpus (espeak-ng, 16 kHz WAV + manifest.csv).",
    )
    ap.add_argument("out_dir", help="output folder")
    ap.add_argument("--speakers", type=int, default=6, help="number of synthetic speakers (default 6)")
    ap.add_argument("--repetitions", type=int, default=1, help="repetitions per speaker and content (default 1)")
    ap.add_argument("--kind", choices=("words", "sentences", "both"), default="words")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--words", default=None, help="comma-separated Chinese words (default: built-in 37)")
    ap.add_argument("--sentences", default=None, help="comma-separated Chinese sentences (default: built-in 23)")
    ap.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    ap.add_argument("--workers", type=int, default=None, help="synthesis processes (default min(4, CPUs))")
    ap.add_argument("--overwrite", action="store_true", help="regenerate even if up to date")
    args = ap.parse_args(argv)

    def split(s: str | None) -> list[str] | None:
        return [w.strip() for w in s.replace("，", ",").split(",") if w.strip()] if s else None

    try:
        m = generate_corpus(
            args.out_dir,
            n_speakers=args.speakers,
            words=split(args.words),
            sentences=split(args.sentences),
            repetitions=args.repetitions,
            seed=args.seed,
            kind=args.kind,
            sample_rate=args.sample_rate,
            workers=args.workers,
            overwrite=args.overwrite,
            verbose=True,
        )
    except (SynthesisError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    s = m.summary()
    s.pop("label_counts")
    print(json.dumps(s, ensure_ascii=False))
    return 0
