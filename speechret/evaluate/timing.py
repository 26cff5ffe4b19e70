"""Retrieval-time measurements of papers A and B.

* :func:`retrieval_time_table` — paper B §V-E **Table 4**: "traditional traversal retrieval"
  vs the "two-stage" classification retrieval of §IV-F over 10,000 speeches in 10 categories
  (1,000 each) at hash lengths 64/128/256/384/512, the two-stage time split into the category
  stage (h1, over all 10,000 items) and the semantic stage (BER of h2 on the candidate set).
  The paper reports per query: traversal 0.0591 … 0.1201 s, two-stage 0.0380 + (0.0085 …
  0.0210) s. Beside the paper's two methods the table times a vectorised numpy traversal and
  the FAISS matchers of :mod:`speechret.search.matchers`.
* :func:`end_to_end_time` — paper B §V-E **Table 5** (average time of feature learning +
  retrieval matching per query, 0.4394 s CNN / 0.5274 s CRNN for 10 s speech at 384 bits) and
  paper A **Table 6** (average retrieval time per 4 s query, 0.5548 s Log-Mel / 0.5198 s MFCC):
  features + network + hashing of one query, then matching it against a database.
* :func:`format_markdown` — a markdown table of result rows.

The synthetic database of :func:`retrieval_time_table` stands in for the THCHS-30 codes: every
item has a category (balanced) and a random K-bit semantic hash h2 drawn around a per-category
centre (each bit flipped with ``cluster_flip`` ≈ 0.15), so same-category codes are clustered;
the code is paper B's ``h1 (one-hot, C bits) ‖ h2 (K bits)``. Queries are database items with
``query_flip`` (a few %) of their h2 bits flipped, so every query finds its source item.

Match criterion (identical for every method, checked by :func:`_check_same_hits`): an item
matches a query when it has the query's category (equal h1) **and** ``BER(h2) < τ`` (paper B
eq. 16, strict, as in :mod:`speechret.search.matchers`). The methods that scan the whole table
on h2 (traversals, FAISS flat) therefore also test the category of the items under the BER
threshold; the items they reject that way — same-looking codes of another category, which the
two-stage method never even compares — are counted in ``cross_category_hits``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from speechret.hashing import hamming, pack_bits, split_paper_b
from speechret.search.matchers import ThresholdMatcher, TwoStageMatcher, category_of

Hits = tuple[np.ndarray, np.ndarray]  # (ids int64, ber float64), sorted by (ber, id)

#: row keys of :func:`retrieval_time_table`, in table order.
TABLE_COLUMNS = (
    "bits", "n_items", "traversal_ms", "traversal_numpy_ms", "two_stage_category_ms",
    "two_stage_semantic_ms", "two_stage_ms", "faiss_flat_ms", "faiss_two_stage_ms",
    "speedup_two_stage_vs_traversal", "mean_hits", "mean_candidates", "cross_category_hits",
    "source_recall", "n_queries", "n_traversal_queries",
)


class HitSetMismatch(AssertionError):
    """Two retrieval methods returned different hit sets for the same query."""


# ------------------------------------------------------------------------------ synthetic data
def synthetic_paper_b_codes(n_items: int, n_classes: int, k_bits: int, n_queries: int,
                            seed: int = 0, cluster_flip: float = 0.15,
                            query_flip: float = 0.03) -> dict[str, np.ndarray]:
    """A seeded paper-B database and its queries.

    Returns ``codes`` bool ``(N, C + K)`` (h1 one-hot ‖ h2), ``cats`` int64 ``(N,)``,
    ``queries`` bool ``(Q, C + K)``, ``query_cats`` and ``sources`` (the database row each
    query was made from). Categories are balanced (``n_items // n_classes`` each, the remainder
    spread over the first ones) and shuffled."""
    if n_items < 1 or n_classes < 1 or k_bits < 1 or n_queries < 1:
        raise ValueError("n_items, n_classes, k_bits and n_queries must be positive")
    rng = np.random.default_rng([int(seed), int(k_bits), int(n_items), int(n_classes)])
    cats = rng.permutation(np.arange(n_items) % n_classes).astype(np.int64)
    centres = rng.random((n_classes, k_bits)) < 0.5
    h2 = centres[cats] ^ (rng.random((n_items, k_bits)) < cluster_flip)
    h1 = np.zeros((n_items, n_classes), dtype=bool)
    h1[np.arange(n_items), cats] = True
    codes = np.concatenate([h1, h2], axis=1)
    sources = rng.choice(n_items, n_queries, replace=n_queries > n_items).astype(np.int64)
    queries = codes[sources].copy()
    queries[:, n_classes:] ^= rng.random((n_queries, k_bits)) < query_flip
    return {"codes": codes, "cats": cats, "queries": queries, "query_cats": cats[sources],
            "sources": sources}


# ----------------------------------------------------------------------------- hit-set check
def _sorted(ids: np.ndarray, ber: np.ndarray) -> Hits:
    ids = np.asarray(ids, dtype=np.int64)
    ber = np.asarray(ber, dtype=np.float64)
    order = np.lexsort((ids, ber))
    return ids[order], ber[order]


def _check_same_hits(results: Mapping[str, Sequence[Hits]], context: str = "") -> None:
    """Raise :class:`HitSetMismatch` unless every method returned the same hits for every query.

    ``results``: method name → one ``(ids, ber)`` per query (the same queries, in the same
    order, for every method). Hits are compared as sets of ids, and the BER each method gives
    an id must be equal too."""
    names = list(results)
    if len(names) < 2:
        return
    ref_name = names[0]
    ref = results[ref_name]
    for name in names[1:]:
        got = results[name]
        if len(got) != len(ref):
            raise HitSetMismatch(f"{context}{name} answered {len(got)} queries, {ref_name} {len(ref)}")
        for qi, ((ids_a, ber_a), (ids_b, ber_b)) in enumerate(zip(ref, got)):
            oa, ob = np.argsort(ids_a, kind="stable"), np.argsort(ids_b, kind="stable")
            ia, ib = np.asarray(ids_a)[oa], np.asarray(ids_b)[ob]
            if not np.array_equal(ia, ib):
                missing = np.setdiff1d(ia, ib)[:10].tolist()
                extra = np.setdiff1d(ib, ia)[:10].tolist()
                raise HitSetMismatch(
                    f"{context}query {qi}: {name} returned {len(ib)} hits, {ref_name} {len(ia)}; "
                    f"missing from {name}: {missing}; extra in {name}: {extra}")
            ba, bb = np.asarray(ber_a)[oa], np.asarray(ber_b)[ob]
            if not np.array_equal(ba, bb):
                bad = int(np.flatnonzero(ba != bb)[0])
                raise HitSetMismatch(
                    f"{context}query {qi}: id {int(ia[bad])} has BER {float(bb[bad])!r} from {name}, "
                    f"{float(ba[bad])!r} from {ref_name}")


# ---------------------------------------------------------------------------------- methods
def _h1_words(h1: np.ndarray) -> np.ndarray:
    """Category hashes ``bool (N, C)`` as ``uint64 (N, ceil(C / 64))`` words (packed bits,
    zero-padded), so equal h1 ⇔ equal word rows."""
    packed = pack_bits(h1)
    nb = 8 * ((packed.shape[1] + 7) // 8)
    out = np.zeros((packed.shape[0], nb), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view(np.uint64)


class _Methods:
    """The retrieval methods of :func:`retrieval_time_table` over one synthetic database.

    Every method answers one query (row ``i`` of the query table) per call, the on-line case
    the papers time, and returns its ``(ids, ber)`` hits sorted by (BER, id)."""

    def __init__(self, data: dict[str, np.ndarray], n_classes: int, ber_threshold: float):
        self.c = int(n_classes)
        self.tau = float(ber_threshold)
        codes, queries = data["codes"], data["queries"]
        self.db_h1, self.db_h2 = split_paper_b(codes, self.c)
        self.q_h1, self.q_h2 = split_paper_b(queries, self.c)
        self.k = self.db_h2.shape[1]
        self.db_h1 = np.ascontiguousarray(self.db_h1)
        self.db_h2 = np.ascontiguousarray(self.db_h2)
        self.db_h2_packed = pack_bits(self.db_h2)
        self.q_h2_packed = pack_bits(self.q_h2)
        self.db_h1_words = _h1_words(self.db_h1)
        self.q_h1_words = _h1_words(self.q_h1)
        self.db_cat = category_of(self.db_h1)
        self.q_cat = category_of(self.q_h1)
        self.queries = np.ascontiguousarray(queries)
        self.ids = np.arange(len(codes), dtype=np.int64)
        self.flat = ThresholdMatcher(self.k, self.tau, kind="flat").add(self.db_h2_packed, self.ids)
        self.two_stage = TwoStageMatcher(self.c, self.tau, kind="flat").add(codes, self.ids)
        self.cross_category = 0  # hits on h2 alone rejected for their category (FAISS flat run)

    # paper B's "traditional traversal retrieval" — deliberately naive
    def traversal(self, i: int) -> Hits:
        q1, q2, k, tau = self.q_h1[i], self.q_h2[i], self.k, self.tau
        db_h1, db_h2 = self.db_h1, self.db_h2
        ids, bers = [], []
        for j in range(len(db_h2)):  # one item at a time, as the paper's traversal
            ber = np.count_nonzero(np.logical_xor(q2, db_h2[j])) / k  # eq. 16
            if ber < tau and np.array_equal(db_h1[j], q1):
                ids.append(j)
                bers.append(ber)
        return _sorted(np.array(ids, dtype=np.int64), np.array(bers, dtype=np.float64))

    def traversal_numpy(self, i: int) -> Hits:
        h = hamming(self.q_h2_packed[i : i + 1], self.db_h2_packed)[0]
        ber = h / self.k
        keep = np.flatnonzero((ber < self.tau) & (self.db_cat == self.q_cat[i]))
        return _sorted(keep, ber[keep])

    def two_stage_numpy(self, i: int) -> tuple[Hits, float, float, int]:
        """Paper B §IV-F; returns the hits, the category- and semantic-stage seconds and the
        candidate count."""
        t0 = time.perf_counter()
        # stage 1: the category hash h1 of all items against the query's → candidate set
        eq = self.db_h1_words == self.q_h1_words[i]
        cand = np.flatnonzero(eq[:, 0] if eq.shape[1] == 1 else eq.all(axis=1))
        t1 = time.perf_counter()
        # stage 2: BER of the semantic hash h2 on the candidates only
        h = hamming(self.q_h2_packed[i : i + 1], self.db_h2_packed[cand])[0]
        ber = h / self.k
        keep = ber < self.tau
        hits = _sorted(cand[keep], ber[keep])
        t2 = time.perf_counter()
        return hits, t1 - t0, t2 - t1, len(cand)

    def faiss_flat(self, i: int) -> Hits:
        ids, ber = self.flat.search(self.q_h2_packed[i : i + 1])[0]
        keep = self.db_cat[ids] == self.q_cat[i]
        self.cross_category += int(len(ids) - keep.sum())
        return ids[keep], ber[keep]

    def faiss_two_stage(self, i: int) -> Hits:
        return self.two_stage.search(self.queries[i : i + 1])[0]


def _time_per_query(fn: Callable[[int], Any], queries: Sequence[int]) -> tuple[float, list]:
    """Mean seconds per query of ``fn`` called once per query, and its answers."""
    out = []
    t0 = time.perf_counter()
    for i in queries:
        out.append(fn(i))
    return (time.perf_counter() - t0) / max(1, len(queries)), out


def _time_two_stage(m: _Methods, queries: Sequence[int]) -> tuple[float, float, list, float]:
    cat_s = sem_s = 0.0
    out, n_cand = [], 0
    for i in queries:
        hits, a, b, nc = m.two_stage_numpy(i)
        cat_s += a
        sem_s += b
        n_cand += nc
        out.append(hits)
    n = max(1, len(queries))
    return cat_s / n, sem_s / n, out, n_cand / n


def retrieval_time_table(n_items: int = 10000, n_classes: int = 10,
                         hash_lengths: Sequence[int] = (64, 128, 256, 384, 512),
                         n_queries: int = 200, ber_threshold: float = 0.26, seed: int = 0,
                         faiss_threads: int = 1, repeats: int = 3, n_traversal_queries: int = 20,
                         cluster_flip: float = 0.15, query_flip: float = 0.03) -> list[dict]:
    """Paper B §V-E **Table 4**: per-query retrieval time of the traditional traversal vs the
    "two-stage" classification retrieval (§IV-F), one row per semantic-hash length K.

    The database is :func:`synthetic_paper_b_codes` (``n_items`` codes ``h1 ‖ h2`` in
    ``n_classes`` balanced categories; the paper: 10,000 THCHS-30 speeches, 10 categories of
    1,000, τ = 0.26). Queries are answered one at a time. Columns (milliseconds per query: the
    mean over the queries of one repeat, then the median over ``repeats`` repeats):

    * ``traversal_ms`` — the paper's "traditional traversal retrieval": a plain Python loop over
      **every** item computing ``BER = count(h2_q XOR h2_x) / K`` (eq. 16) with numpy on bool
      bit arrays, keeping items with ``BER < τ`` and the query's h1. Deliberately naive — it is
      what the paper times (≈ 0.06–0.12 s per query in Table 4). Being slow, it is timed on
      the first ``n_traversal_queries`` queries only (default 20), and its hits are checked
      against the other methods' on those queries.
    * ``traversal_numpy_ms`` — the same full-table traversal vectorised: packed uint8 h2,
      XOR + popcount against the whole table (:func:`speechret.hashing.hamming`), then the
      threshold and category test.
    * ``two_stage_category_ms`` — two-stage, stage 1 (the paper's 0.0380 s): the query's
      category hash h1 compared with the h1 of all items (each h1 packed into uint64 words, one
      vectorised equality test over the table) → the candidate set (item indices).
    * ``two_stage_semantic_ms`` — stage 2 (the paper's 0.0085 … 0.0210 s): BER of h2 (packed,
      popcount) on the candidates only, threshold, sorted hits.
    * ``two_stage_ms`` — ``two_stage_category_ms + two_stage_semantic_ms`` (each a median).
    * ``faiss_flat_ms`` — :class:`~speechret.search.matchers.ThresholdMatcher`: one FAISS
      ``IndexBinaryFlat`` ``range_search`` over the h2 of all items, then the category test.
    * ``faiss_two_stage_ms`` — :class:`~speechret.search.matchers.TwoStageMatcher`: stage 1 is
      a lookup of the query's category sub-index, stage 2 a FAISS ``range_search`` in it.
    * ``speedup_two_stage_vs_traversal`` — ``traversal_ms / two_stage_ms``.
    * ``mean_hits`` — hits per query; ``mean_candidates`` — stage-2 candidate-set size per query
      (≈ ``n_items / n_classes``); ``cross_category_hits`` — per query, items of another
      category with ``BER(h2) < τ`` that the whole-table methods reject by category (the
      two-stage method never compares them); ``source_recall`` — fraction of queries whose
      source item is among the hits.

    Correctness first: all methods must return exactly the same hits (ids and BERs) for every
    query, else :class:`HitSetMismatch` is raised. FAISS runs with ``faiss_threads`` OpenMP
    threads (restored afterwards). Each method answers one query untimed before timing.
    """
    import faiss  # here, after speechret.search (imported above) set faiss.loader to WARNING

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    old_threads = faiss.omp_get_max_threads()
    if faiss_threads:
        faiss.omp_set_num_threads(int(faiss_threads))
    rows = []
    try:
        for k in hash_lengths:
            data = synthetic_paper_b_codes(n_items, n_classes, int(k), n_queries, seed,
                                           cluster_flip, query_flip)
            m = _Methods(data, n_classes, ber_threshold)
            q_all = list(range(n_queries))
            q_trav = q_all[: max(1, min(n_traversal_queries, n_queries))]
            for fn in (m.traversal, m.traversal_numpy, m.two_stage_numpy, m.faiss_flat, m.faiss_two_stage):
                fn(0)  # warm-up
            times: dict[str, list[float]] = {c: [] for c in (
                "traversal_ms", "traversal_numpy_ms", "two_stage_category_ms", "two_stage_semantic_ms",
                "faiss_flat_ms", "faiss_two_stage_ms")}
            for _ in range(repeats):
                m.cross_category = 0
                t_trav, r_trav = _time_per_query(m.traversal, q_trav)
                t_np, r_np = _time_per_query(m.traversal_numpy, q_all)
                t_cat, t_sem, r_two, n_cand = _time_two_stage(m, q_all)
                t_flat, r_flat = _time_per_query(m.faiss_flat, q_all)
                t_f2, r_f2 = _time_per_query(m.faiss_two_stage, q_all)
                ctx = f"bits={k}: "
                _check_same_hits({"two_stage": r_two, "traversal_numpy": r_np, "faiss_flat": r_flat,
                                  "faiss_two_stage": r_f2}, ctx)
                _check_same_hits({"two_stage": r_two[: len(q_trav)], "traversal": r_trav}, ctx)
                for key, t in (("traversal_ms", t_trav), ("traversal_numpy_ms", t_np),
                               ("two_stage_category_ms", t_cat), ("two_stage_semantic_ms", t_sem),
                               ("faiss_flat_ms", t_flat), ("faiss_two_stage_ms", t_f2)):
                    times[key].append(t * 1e3)
            row: dict[str, Any] = {"bits": int(k), "n_items": int(n_items)}
            for key, v in times.items():
                row[key] = float(np.median(v))
            row["two_stage_ms"] = row["two_stage_category_ms"] + row["two_stage_semantic_ms"]
            row["speedup_two_stage_vs_traversal"] = row["traversal_ms"] / row["two_stage_ms"]
            row["mean_hits"] = float(np.mean([len(ids) for ids, _ in r_two]))
            row["mean_candidates"] = float(n_cand)
            row["cross_category_hits"] = m.cross_category / n_queries
            row["source_recall"] = float(np.mean([s in set(ids.tolist())
                                                  for s, (ids, _) in zip(data["sources"], r_two)]))
            row["n_queries"] = int(n_queries)
            row["n_traversal_queries"] = len(q_trav)
            rows.append({c: row[c] for c in TABLE_COLUMNS})
    finally:
        faiss.omp_set_num_threads(old_threads)
    return rows


# ------------------------------------------------------------------------------- end to end
def end_to_end_time(hasher: Any, waves: Sequence[np.ndarray], database_codes: np.ndarray,
                    matcher: str = "auto", ber_threshold: float = 0.26, repeats: int = 3) -> dict:
    """Paper B §V-E **Table 5** / paper A **Table 6**: average time per query of "feature
    learning + retrieval matching".

    Every wave is one query, processed alone (batch of one), timed in two parts:

    * hashing — ``hasher.codes_of_waves([wave])``: feature extraction (Log-Mel / MFCC / image,
      on the hasher's device), the network forward pass and the hash function;
    * matching — the query code searched in a matcher built (untimed) over ``database_codes``
      (fixed-length bool codes ``(N, bits)``, e.g. ``hasher.codes_of_waves`` of the library):
      ``matcher="auto"`` picks :class:`~speechret.search.matchers.TwoStageMatcher` with
      ``hasher.n_classes`` when the hash method has a ``two_stage`` search mode (paper B), else
      :class:`~speechret.search.matchers.ThresholdMatcher` on the packed code (``"threshold"``),
      both with ``BER < ber_threshold``.

    One query is run untimed first (warm-up), then all waves ``repeats`` times. Returns
    ``e2e_mean_s`` / ``e2e_p50_s`` (hashing + matching per query), ``hash_mean_s``,
    ``match_mean_s``, ``audio_seconds_mean`` (mean query duration) and ``x_realtime`` (audio
    seconds per second of processing = ``audio_seconds_mean / e2e_mean_s``), plus
    ``n_queries`` (timed), ``n_database`` and ``matcher``. Paper B reports 0.4394 s (CNN) and
    0.5274 s (CRNN) for 10 s queries at 384 bits; paper A 0.5548 s (Log-Mel) / 0.5198 s (MFCC)
    for 4 s queries. Audio loading is not timed (waves are arrays)."""
    if hasher.hashing.variable_length:
        raise ValueError(f"end_to_end_time needs fixed-length codes; {hasher.method}'s are variable-length")
    waves = [np.asarray(w, dtype=np.float32) for w in waves]
    if not waves:
        raise ValueError("no query waves")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    db = np.asarray(database_codes, dtype=bool)
    if db.ndim != 2 or db.shape[0] == 0:
        raise ValueError(f"database_codes must be a non-empty bool (N, bits) array, got shape {db.shape}")
    if matcher == "auto":
        matcher = "two_stage" if "two_stage" in hasher.hashing.search_modes else "threshold"
    if matcher == "two_stage":
        m = TwoStageMatcher(hasher.n_classes, ber_threshold).add(db)

        def match(code: np.ndarray):
            return m.search(code)
    elif matcher == "threshold":
        m = ThresholdMatcher(db.shape[1], ber_threshold).add_bits(db)

        def match(code: np.ndarray):
            return m.search(pack_bits(code))
    else:
        raise ValueError(f"unknown matcher {matcher!r}; choose 'auto', 'two_stage' or 'threshold'")

    def one(wave: np.ndarray) -> tuple[float, float]:
        t0 = time.perf_counter()
        code = np.asarray(hasher.codes_of_waves([wave]), dtype=bool)
        t1 = time.perf_counter()
        if code.shape[-1] != db.shape[1]:
            raise ValueError(f"query code has {code.shape[-1]} bits, database {db.shape[1]}")
        match(code)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1

    one(waves[0])  # warm-up
    hash_s, match_s = [], []
    for _ in range(repeats):
        for w in waves:
            a, b = one(w)
            hash_s.append(a)
            match_s.append(b)
    hash_a, match_a = np.asarray(hash_s), np.asarray(match_s)
    total = hash_a + match_a
    audio = float(np.mean([len(w) / hasher.sample_rate for w in waves]))
    e2e = float(total.mean())
    return {"e2e_mean_s": e2e, "e2e_p50_s": float(np.median(total)), "hash_mean_s": float(hash_a.mean()),
            "match_mean_s": float(match_a.mean()), "audio_seconds_mean": audio,
            "x_realtime": audio / e2e if e2e > 0 else math.inf, "n_queries": len(total),
            "n_database": int(db.shape[0]), "matcher": matcher}


# ---------------------------------------------------------------------------------- report
def _fmt(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:.1f}"
        if abs(v) >= 1:
            return f"{v:.3f}"
        return f"{v:.4g}"
    return str(v)


def format_markdown(rows: Sequence[Mapping[str, Any]] | Mapping[str, Any],
                    columns: Sequence[str] | None = None) -> str:
    """A markdown table of ``rows`` (dicts; one dict is one row). ``columns`` defaults to the
    keys of all rows in first-seen order; missing values print as ``-``."""
    if isinstance(rows, Mapping):
        rows = [rows]
    rows = list(rows)
    if columns is None:
        columns = []
        for r in rows:
            columns += [c for c in r if c not in columns]
    cells = [[_fmt(r[c]) if c in r else "-" for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[j]) for row in cells]) for j, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |",
             "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"]
    lines += ["| " + " | ".join(v.rjust(w) for v, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Paper B Table 4: traversal vs two-stage retrieval time")
    p.add_argument("--n-items", type=int, default=10000)
    p.add_argument("--n-classes", type=int, default=10)
    p.add_argument("--bits", type=int, nargs="+", default=[64, 128, 256, 384, 512])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--threshold", type=float, default=0.26)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rows = retrieval_time_table(a.n_items, a.n_classes, a.bits, a.queries, a.threshold, a.seed,
                                a.threads, a.repeats)
    print(format_markdown(rows))


__all__ = [
    "HitSetMismatch",
    "TABLE_COLUMNS",
    "end_to_end_time",
    "format_markdown",
    "retrieval_time_table",
    "synthetic_paper_b_codes",
]

if __name__ == "__main__":
    main()
