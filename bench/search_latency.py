"""Search latency of the FAISS binary indexes (speechret.search.index) vs library size and code
length, with the memory-scan floor.

For every (index kind, library size N, code length d) it builds the index over N random codes,
then times single-query searches (one query per call, the on-line case): top-10
(``topk_search``) and threshold (``threshold_search``, BER < T with T = 0.25; every query is a
library code with ~10 % of its bits flipped, so it has at least one hit). Reported: p50 / p99
latency in ms, the bytes a query must scan, the memory-scan floor = bytes ÷ measured memory
bandwidth, and the ratio p50 ÷ floor (1 = as fast as streaming the codes from RAM).

* Bytes scanned: flat N·d/8; IVF nlist·d/8 (quantizer) + N·nprobe/nlist·(d/8 + 8) (probed lists,
  codes + int64 ids, assuming balanced lists); HNSW has no linear scan: "-" (its cost is
  ~efSearch·M distance evaluations, random accesses).
* Threads: FAISS runs with 1 OpenMP thread by default (``--threads``).
* Bandwidth: a numpy copy of a 256 MiB array (best of 5), counted as read + write
  (2 × bytes ÷ time), single thread — the relevant rate for one query, which FAISS does not
  parallelise (it parallelises over queries).
* IVF: nlist = round(sqrt(N)), nprobe = 16 by default (``--nprobe``), trained on a sample of
  ≤ 50·nlist codes. HNSW: M = 16, efConstruction = 40, efSearch = 64; threshold search on HNSW
  is the search(k = 1024)-then-filter fallback. HNSW builds above ``--hnsw-max`` codes (default
  100k) are skipped: a 1M-code build takes many minutes on 2 cores.

    .venv/bin/python bench/search_latency.py                          # full default grid
    .venv/bin/python bench/search_latency.py --sizes 10000 100000 --bits 64 256 --kinds flat ivf
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechret.search import index as ix  # noqa: E402
from speechret.search.matchers import threshold_search, topk_search  # noqa: E402


def memory_bandwidth(n_bytes: int = 256 << 20, repeats: int = 5) -> float:
    """Bytes/s moved by a single-thread numpy copy (read + write)."""
    src = np.ones(n_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * n_bytes / best


def _queries(db: np.ndarray, n: int, d_bits: int, rng) -> np.ndarray:
    q = db[rng.choice(len(db), n)].copy()
    bits = np.unpackbits(q, axis=1, bitorder="little").astype(bool)
    flips = rng.random(bits.shape) < 0.1
    return np.packbits(bits ^ flips, axis=1, bitorder="little")


def _time(fn, queries: np.ndarray, budget_s: float) -> np.ndarray:
    fn(queries[:1])  # warm-up
    times = []
    start = time.perf_counter()
    for i in range(len(queries)):
        t0 = time.perf_counter()
        fn(queries[i : i + 1])
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s and len(times) >= 20:
            break
    return np.asarray(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--bits", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw"], choices=ix.KINDS)
    p.add_argument("--queries", type=int, default=200, help="single queries per measurement (max)")
    p.add_argument("--budget", type=float, default=2.0, help="seconds per measurement (min 20 queries)")
    p.add_argument("--threshold", type=float, default=0.25)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--hnsw-max", type=int, default=100_000, help="skip HNSW builds above this size")
    p.add_argument("--threads", type=int, default=1,
                   help="FAISS OpenMP threads (default 1: a single query gains nothing from more, and "
                        "idle OMP workers add jitter on a shared machine; 0 = FAISS default)")
    args = p.parse_args(argv)
    if args.threads:
        faiss.omp_set_num_threads(args.threads)

    bw = memory_bandwidth()
    print(f"# {platform.processor() or platform.machine()}, faiss {faiss.__version__}, "
          f"{faiss.omp_get_max_threads()} OMP threads; memory bandwidth (numpy copy, 1 thread) "
          f"{bw / 1e9:.1f} GB/s; threshold BER < {args.threshold}")
    header = (f"| {'kind':5} | {'N':>9} | {'bits':>4} | {'build s':>7} | {'top10 p50':>9} | {'top10 p99':>9} | "
              f"{'thr p50':>8} | {'thr p99':>8} | {'MB scanned':>10} | {'floor ms':>8} | {'p50/floor':>9} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    rng = np.random.default_rng(0)
    for n in args.sizes:
        for d in args.bits:
            db = rng.integers(0, 256, size=(n, d // 8), dtype=np.uint8)
            queries = _queries(db, args.queries, d, rng)
            for kind in args.kinds:
                if kind == "hnsw" and n > args.hnsw_max:
                    print(f"| {kind:5} | {n:>9} | {d:>4} | skipped (> --hnsw-max {args.hnsw_max}) |")
                    continue
                params: dict = {}
                if kind == "ivf":
                    nlist = max(1, int(round(np.sqrt(n))))
                    params = {"nlist": nlist, "nprobe": min(args.nprobe, nlist), "train_size": 50 * nlist}
                elif kind == "hnsw":
                    params = {"M": 16, "efConstruction": 40, "efSearch": 64}
                t0 = time.perf_counter()
                index = ix.make_index(kind, db, **params)
                build = time.perf_counter() - t0
                t_top = _time(lambda q: topk_search(index, q, 10, d), queries, args.budget)
                t_thr = _time(lambda q: threshold_search(index, q, d, args.threshold), queries, args.budget)
                if kind == "flat":
                    scanned = n * d / 8
                elif kind == "ivf":
                    scanned = params["nlist"] * d / 8 + n * params["nprobe"] / params["nlist"] * (d / 8 + 8)
                else:
                    scanned = None
                p50, p99 = np.percentile(t_top, 50) * 1e3, np.percentile(t_top, 99) * 1e3
                r50, r99 = np.percentile(t_thr, 50) * 1e3, np.percentile(t_thr, 99) * 1e3
                if scanned is None:
                    tail = f"{'-':>10} | {'-':>8} | {'-':>9} |"
                else:
                    floor = scanned / bw * 1e3
                    tail = f"{scanned / 1e6:>10.2f} | {floor:>8.3f} | {p50 / floor:>9.1f} |"
                print(f"| {kind:5} | {n:>9} | {d:>4} | {build:>7.2f} | {p50:>9.3f} | {p99:>9.3f} | "
                      f"{r50:>8.3f} | {r99:>8.3f} | " + tail, flush=True)
                del index


if __name__ == "__main__":
    main()
