"""What the stored bits cost, and two search-side refinements measured against them (issue 12).

    python bench/code_distances.py CKPT [CKPT ...] [--split val] [--labels 0 1 ...] [--qe-k 2 3 5 8]
                                    [--qe-alpha 0 3] [--data-root DIR]

For each ``speechret`` checkpoint (the sign of its tanh hash layer) this codes the checkpoint's
``--split`` speakers (default: its *validation* speakers, the training run's own split read from
the run config stored in the checkpoint; ``test`` only for a report) through its own audio → code
path (front end, test-time views, features, network) and prints the cross-speaker mAP
(``protocol=cross_speaker``'s relevance: same word, another speaker; the query's own speaker is
not ranked) of four ways to rank the library:

* ``hamming``: BER between the stored codes, what ``search.py`` does;
* ``asymmetric``: the query keeps its relaxed code ``u`` (the views' mean of ``tanh``, in
  ``[-1, 1]``) and ranks the stored bits ``b`` by ``-<u, 2b - 1>``. Asymmetric distances for
  binary embeddings: Gordo, Perronnin, Gong & Lempitsky, TPAMI 2014; Dong, Charikar & Li, SIGIR
  2008. The library still stores bits; a deployment would re-rank the binary index's candidates;
* ``qe k=.. a=..``: α query expansion on the bits (Radenović, Tolias & Chum, "Fine-tuning CNN
  image retrieval with no human annotation", TPAMI 2018, §4; average QE: Chum et al., ICCV 2007):
  the query's ±1 code plus its ``k`` nearest library codes weighted by their similarity to the
  power α, its sign searched again (a bit the sum leaves at 0 keeps the query's). Neighbours by
  the query's own speaker are left out, as the protocol leaves them out of the ranking;
* ``relaxed``: the cosine between relaxed codes on both sides, a reference only (a library of
  bits cannot rank this way): the distance from ``hamming`` is what the sign costs.

Measured on 2026-12-07 over the eight checkpoints of the default recipe's validation runs (folds
0-3, seeds 12345 and 1; ``reports/cross_speaker.md``, first lines): neither refinement was kept.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from speechret.evaluate.eval_sets import load_eval_data
from speechret.hashing.bits import ber_matrix, field
from speechret.hashing.hasher import Hasher
from speechret.metrics import cross_speaker_relevance, mean_average_precision


def relaxed_codes(hasher: Hasher, waves: Sequence[np.ndarray]) -> np.ndarray:
    """The relaxed codes ``u`` (N, K), each clip's test-time views merged as :meth:`Hasher.codes_of_waves`
    merges them before the sign."""
    parts = [field(hasher.hashing.merge_views(out, hasher.n_views), "hash_features").float().cpu().numpy()
             for out in hasher.batched_outputs(waves)]
    return np.concatenate(parts).astype(np.float64)


def alpha_query_expansion(codes: np.ndarray, speakers: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """α-QE on bool codes (N, K): ``sign(q + sum_i s_i^alpha d_i)`` over each code's ``k`` most similar codes
    by other speakers (``s``: the ±1 codes' cosine; a neighbour with ``s <= 0`` has no vote); returns bool (N, K)."""
    x = codes.astype(np.float64) * 2 - 1
    sim = x @ x.T / x.shape[1]
    sim[speakers[:, None] == speakers[None, :]] = -np.inf   # the query's own speaker (and itself) left out
    nearest = np.argsort(-sim, axis=1, kind="stable")[:, : int(k)]
    s = np.take_along_axis(sim, nearest, 1)
    w = np.where(s > 0, np.abs(s) ** float(alpha), 0.0)   # a neighbour as far as chance (or further) has no vote
    v = x + np.einsum("nk,nkb->nb", w, x[nearest])
    return np.where(v == 0, x, v) > 0


def rankings(codes: np.ndarray, u: np.ndarray, speakers: np.ndarray, qe: Sequence[tuple[int, float]]) -> dict:
    """Distance matrices (N, N), query rows against library columns, by name."""
    out = {"hamming": ber_matrix(codes, codes), "asymmetric": -(u @ (codes * 2.0 - 1).T)}
    for k, a in qe:
        out[f"qe k={k} a={a:g}"] = ber_matrix(alpha_query_expansion(codes, speakers, k, a), codes)
    un = u / np.linalg.norm(u, axis=1, keepdims=True).clip(1e-12)
    out["relaxed"] = -(un @ un.T)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ckpts", nargs="+")
    p.add_argument("--split", default="val", choices=["val", "test"])
    p.add_argument("--labels", nargs="*", type=int, default=None,
                   help="corpus word ids to keep (default: the checkpoint's own vocabulary)")
    p.add_argument("--qe-k", nargs="*", type=int, default=[2, 3, 5, 8])
    p.add_argument("--qe-alpha", nargs="*", type=float, default=[0.0, 3.0])
    p.add_argument("--data-root", default=None, help="where the checkpoint's corpus lives now, if it moved")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    qe = [(k, a) for k in args.qe_k for a in args.qe_alpha]
    table: dict[str, list[float]] = {}
    names = []
    for ckpt in args.ckpts:
        hasher = Hasher.from_checkpoint(ckpt)
        if hasher.method != "speechret":
            raise SystemExit(f"{ckpt}: hash method {hasher.method!r}; this benchmark reads the sign method's "
                             "relaxed code (speechret checkpoints only)")
        data_cfg = dict(hasher.config["data"])
        if args.data_root:
            data_cfg["root"] = args.data_root
        data = load_eval_data(data_cfg, split=args.split, within_labels=args.labels)
        codes = np.asarray(hasher.codes_of_waves(data.waves))
        u = relaxed_codes(hasher, data.waves)
        if not np.array_equal(u > 0, codes):
            raise SystemExit(f"{ckpt}: the relaxed codes' signs are not the stored codes")
        labels, speakers = data.labels, data.speakers
        relevant, same_speaker, _ = cross_speaker_relevance(labels, labels, speakers, speakers)
        names.append(Path(ckpt).parent.parent.name + "/" + Path(ckpt).name)
        for name, dist in rankings(codes, u, speakers, qe).items():
            table.setdefault(name, []).append(mean_average_precision(dist, relevant, exclude=same_speaker)["map"])
        print(f"{names[-1]}: {len(labels)} clips, {len(set(speakers))} {args.split} speakers, "
              f"hamming {table['hamming'][-1]:.4f}", flush=True)
    base = np.asarray(table["hamming"])
    print(f"\ncross-speaker mAP, {args.split} speakers; change against hamming per checkpoint, then the mean\n")
    print("| ranking | " + " | ".join(names) + " | mean |")
    print("|---|" + "---|" * (len(names) + 1))
    for name, vals in table.items():
        v = np.asarray(vals)
        cells = [f"{x:.4f}" for x in v] if name == "hamming" else [f"{x:+.4f}" for x in v - base]
        mean = f"{v.mean():.4f}" if name == "hamming" else f"{(v - base).mean():+.4f}"
        print(f"| {name} | " + " | ".join(cells) + f" | {mean} |")


if __name__ == "__main__":
    main()
