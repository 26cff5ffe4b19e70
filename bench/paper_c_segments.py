"""How many segments does a paper-C model find in an utterance of k words? (issue 13)

    python bench/paper_c_segments.py CKPT [--split val] [--labels 0 1 3 4 5 6 8 10] [--n 60] [--words 1 2 3 4]

Keyword query-by-example (paper C §4.4, Fig. 10) finds a word inside a longer utterance only when
the model gives that utterance one merged segment per syllable. For each ``k`` this builds ``--n``
utterances of ``k`` distinct words by one speaker of the checkpoint's ``--split`` (default: its
*validation* speakers, from the run config stored in the checkpoint; ``test`` only for a report),
joined by 0.1-0.3 s pauses by ``protocol=keyword``'s own builder (``join_words``), codes them through the
checkpoint's own audio → code path (front end, features, network, §4.4 steps 1-3) and prints

* the mean number of segments against the mean target length (labels of the k words' CTC targets);
* the share of utterances whose segment classes (each segment's argmax: ``binarize=argmax``) are
  exactly the joined targets.

A model trained on isolated two-syllable words alone answered 2.0 segments for every k
(``reports/paper_c_words_e60.md``); ``augment=words`` (:class:`speechret.concat.ConcatWords`) is
the measured fix. Paths in the manifest are read from ``--dsp-root``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_common import default_dsp_root  # noqa: E402

from speechret.audio import load_audio  # noqa: E402
from speechret.data.corpora import load_corpus  # noqa: E402
from speechret.data.dataset import pronunciation_targets  # noqa: E402
from speechret.evaluate.eval_sets import datamodule  # noqa: E402
from speechret.evaluate.protocols import join_words  # noqa: E402
from speechret.hashing.hasher import Hasher  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ckpt")
    p.add_argument("--split", default="val", choices=["val", "test"])
    p.add_argument("--labels", nargs="*", type=int, default=[0, 1, 3, 4, 5, 6, 8, 10],
                   help="word ids (default: DSPSpeech-20's 8 Mandarin words with distinct paper-C targets)")
    p.add_argument("--words", nargs="*", type=int, default=[1, 2, 3, 4])
    p.add_argument("--n", type=int, default=60, help="utterances per k")
    p.add_argument("--pause", nargs=2, type=float, default=[0.1, 0.3])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dsp-root", default=default_dsp_root())
    args = p.parse_args()

    hasher = Hasher.from_checkpoint(args.ckpt, hash_options={"binarize": "argmax"})
    dm = datamodule(hasher.config["data"], root=args.dsp_root)
    speakers = set(dm.split_speakers(args.split))
    items = [it for it in load_corpus("dspspeech20", args.dsp_root)
             if it.speaker in speakers and it.label in set(args.labels)]
    if not items:
        raise SystemExit(f"no items of words {args.labels} by the {args.split} speakers {sorted(speakers)}")
    sr, rng = hasher.sample_rate, np.random.default_rng(args.seed)
    waves = [load_audio(it.path, sr) for it in items]
    labels, spk = np.array([it.label for it in items]), np.array([it.speaker for it in items])
    pools = [np.flatnonzero(spk == s) for s in sorted(speakers)]

    print(f"{args.ckpt}: {args.split} speakers {sorted(speakers)}, words {args.labels}")
    print("| words | utterances | mean segments | mean target labels | segment classes = targets |")
    print("|---|---|---|---|---|")
    for k in args.words:
        utterances, targets = [], []
        for _ in range(args.n):
            pool = pools[int(rng.integers(len(pools)))]
            wave, _, picked = join_words(rng, waves, labels, pool, k, args.pause, sr)
            utterances.append(wave)
            targets.append([t for i in picked for t in pronunciation_targets(items[i])])
        codes = hasher.codes_of_waves(utterances)
        decoded = [np.asarray(c).argmax(1).tolist() if len(c) else [] for c in codes]
        print(f"| {k} | {len(utterances)} | {np.mean([len(c) for c in codes]):.2f} | "
              f"{np.mean([len(t) for t in targets]):.2f} | "
              f"{np.mean([d == t for d, t in zip(decoded, targets)]):.1%} |", flush=True)


if __name__ == "__main__":
    main()
