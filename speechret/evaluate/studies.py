"""Evaluation studies that are not a single query/database ranking.

Each is a protocol object with ``run(context) -> Result`` (see :mod:`speechret.evaluate.runner`):

* :class:`HashLength` — paper B Table 1 (mAP vs hash length 64…512) and the hash-length sweeps
  users run: the same retrieval protocol on several trained checkpoints, one row per code length.
* :class:`Encryption` — paper A §5.4: key space, PESQ-MOS of encrypted and decrypted speech
  (Table 7), adjacent-sample correlation, waveform and spectrogram of original vs encrypted speech
  (Fig. 10), for each cipher (paper A's hyperchaotic, paper B's Rossler, AES-256-GCM).
* :class:`RetrievalTime` — paper B Table 4 (traversal vs "two-stage" vs FAISS per query over
  10,000 codes at 64…512 bits) and, with a checkpoint, paper B Table 5 / paper A Table 6
  (feature learning + hashing + matching time per query).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from speechret.evaluate.protocols import Protocol
from speechret.evaluate.base import Study
from speechret.evaluate.eval_sets import set_metrics
from speechret.evaluate.report import Result, markdown_table, report_header, write_outputs
from speechret.evaluate.runner import Context, evaluate_checkpoint, resolve_checkpoints
from speechret.utils.progress import progress

log = logging.getLogger(__name__)


def _code_bits(hasher: Any) -> int:
    """Hash length of a checkpoint: its model's ``hash_bits`` (paper B: the semantic bits K)."""
    cfg = hasher.config or {}
    model = cfg.get("model") or {}
    for key in ("hash_bits",):
        if model.get(key) is not None:
            return int(model[key])
        net = model.get("net") or {}
        if net.get(key) is not None:
            return int(net[key])
    return -1


class HashLength(Study):
    """The retrieval protocol ``inner`` on every checkpoint of ``ckpt_path`` (list, glob or sweep
    directory), one row per hash length: ``map.<bits>``, ``precision.<bits>``, ``recall.<bits>``,
    ``f1.<bits>``, ``threshold.<bits>``; the unsuffixed keys are those of the longest code.
    Each checkpoint is evaluated on its own evaluation set (``evaluate.set``; a sweep's checkpoints
    share one) and takes its threshold from its own validation split (or ``evaluate.threshold``)."""

    name = "hash_length"

    def __init__(self, inner: Protocol) -> None:
        self.inner = inner

    def describe(self) -> dict[str, Any]:
        return {"inner protocol": self.inner.name, **{f"inner {k}": v for k, v in self.inner.describe().items()
                                                       if k != "protocol"}}

    def _one(self, ctx: Context, ck: Any, rows: list, sets: dict[str, str]) -> None:
        """Evaluate one checkpoint of the study: its report in ``<bits>_bits/`` and a row."""
        hasher = ctx.hasher(ck)
        bits = _code_bits(hasher)
        # each checkpoint's own evaluation set (the same one, cached, when they share the
        # training data config, as a sweep does), checked disjoint from its own training data
        data = ctx.eval_data(hasher, self.inner)
        sub_dir = ctx.out_dir / f"{bits}_bits"
        sub, _ = evaluate_checkpoint(Context(ctx.cfg, sub_dir, ctx.cache), self.inner, hasher, data,
                                     name=f"{bits}_bits")
        write_outputs(sub_dir, sub, f"speechret evaluation — {self.inner.name}, {bits}-bit codes",
                      report_header(self.inner.name, sub.metrics, {"checkpoint": str(ck), **self.inner.describe()}))
        m = sub.metrics
        sets.setdefault(m["eval_set_description"], m["eval_set"])
        rows.append((bits, str(ck), m))

    def run(self, ctx: Context) -> Result:
        from speechret.evaluate import plots

        ckpts = resolve_checkpoints(ctx.cfg.get("ckpt_path"))
        if not ckpts:
            raise ValueError("protocol=hash_length needs ckpt_path=<list | glob | sweep directory>")
        res = Result()
        rows = []
        sets: dict[str, str] = {}
        with progress(f"{self.name}: {len(ckpts)} checkpoints", total=len(ckpts), logger=log) as bar:
            for ck in ckpts:
                self._one(ctx, ck, rows, sets)
                bar.advance()
        rows.sort(key=lambda r: r[0])
        table = []
        for bits, ck, m in rows:
            for k in ("map", "precision", "recall", "f1", "ap", "threshold", "identity_recall", "inter_ber_mean",
                      "inter_ber_std", "far@0.10"):
                if k in m:
                    res.metrics[f"{k}.{bits}"] = m[k]
            table.append([bits, m.get("map"), m.get("precision"), m.get("recall"), m.get("f1"),
                          m.get("identity_recall", float("nan")), m.get("threshold"), f"[report]({bits}_bits/report.md)", ck])
        longest = rows[-1][2]
        for k in ("map", "precision", "recall", "f1", "threshold", "n_queries", "n_database"):
            res.metrics[k] = longest.get(k)
        res.metrics["hash_lengths"] = [r[0] for r in rows]
        res.metrics["eval_set"] = " | ".join(dict.fromkeys(sets.values()))
        res.metrics["eval_set_description"] = (next(iter(sets)) if len(sets) == 1 else
                                               "per checkpoint (see each row's report): " + " | ".join(sets))
        res.metrics["eval_includes_training_data"] = any(r[2].get("eval_includes_training_data") for r in rows)
        res.sections.append((f"Hash length ({self.inner.name}; paper B Table 1)", markdown_table(
            ["bits", "mAP", "precision", "recall", "F1", "identity recall", "threshold", "details", "checkpoint"], table)))
        xs = [r[0] for r in rows]
        series = {k: [r[2].get(k, float("nan")) for r in rows] for k in ("map", "precision", "recall", "f1")}
        res.plots.append(plots.plot_lines(xs, series, ctx.out_dir / "hash_length.png", xlabel="hash bits",
                                          ylabel="metric", title="Retrieval vs hash length (paper B Table 1)"))
        return res


class Encryption(Study):
    """Paper A §5.4 for each cipher of ``ciphers`` (name → ``build_cipher`` arguments) on
    ``n_items`` seeded utterances of the evaluation data.  Chaotic ciphers use the keys given
    (default: the paper's public demo key K = (1,1,1,1), as in §5.4); AES-GCM an ephemeral random
    key (never stored)."""

    name = "encryption"

    def __init__(self, ciphers: Mapping[str, Mapping[str, Any]] | None = None, n_items: int = 20,
                 pesq_mode: str = "nb", pesq_rate: int | None = 8000, seed: int = 0) -> None:
        self.ciphers = dict(ciphers or {"hyperchaotic": {"key_material": {"demo": True}},
                                        "rossler": {"key_material": {"demo": True}},
                                        "aes_gcm": {}})
        self.n_items, self.pesq_mode, self.pesq_rate, self.seed = int(n_items), pesq_mode, pesq_rate, int(seed)

    def describe(self) -> dict[str, Any]:
        return {"ciphers": list(self.ciphers), "n_items": self.n_items, "pesq": f"{self.pesq_mode} at {self.pesq_rate} Hz"}

    def run(self, ctx: Context) -> Result:
        from speechret.crypto import build_cipher
        from speechret.evaluate import plots
        from speechret.audio import to_pcm16
        from speechret.evaluate.security import ciphertext_as_audio, evaluate_cipher, key_space

        need_ckpt = not ctx.cfg.get("data") and ctx.cfg.get("ckpt_path")  # only for its training data config
        data = ctx.eval_data(ctx.hasher(resolve_checkpoints(ctx.cfg.ckpt_path)[0]) if need_ckpt else None)
        rng = np.random.default_rng(self.seed)
        idx = rng.choice(len(data), size=min(self.n_items, len(data)), replace=False)
        waves = [data.waves[i] for i in idx]
        res = Result()
        res.metrics.update(set_metrics(data))
        rows = []
        for name, spec in self.ciphers.items():
            spec = dict(spec)
            material = spec.pop("key_material", None)
            if name == "aes_gcm" and material is None:
                material = os.urandom(32)
            cipher = build_cipher(name, material, **spec)
            m = evaluate_cipher(cipher, waves, data.sample_rate, pesq_mode=self.pesq_mode, pesq_rate=self.pesq_rate)
            ks = key_space(name)
            for k, v in m.items():
                res.metrics[f"{name}.{k}"] = v
            rows.append([name, m.get("pesq_encrypted"), m.get("pesq_decrypted"), m.get("decrypt_bit_exact"),
                         m.get("corr_original"), m.get("corr_encrypted"), ks.get("log2"), ks.get("formula", ""),
                         m.get("encrypt_x_realtime")])
            pcm = to_pcm16(waves[0])
            enc = ciphertext_as_audio(cipher, pcm, item_id="fig10")
            res.plots.append(plots.plot_waveform_spectrogram(pcm.astype(np.float32) / 32768.0, enc, data.sample_rate,
                                                             ctx.out_dir / f"waveform_spectrogram_{name}.png"))
        first = next(iter(self.ciphers))
        for k in ("pesq_encrypted", "pesq_decrypted", "decrypt_bit_exact", "corr_encrypted", "key_space_log2"):
            res.metrics[k] = res.metrics.get(f"{first}.{k}")
        res.metrics["n_items"] = len(waves)
        res.sections.append(("Speech encryption (paper A §5.4, Table 7, Fig. 10)", markdown_table(
            ["cipher", "PESQ encrypted", "PESQ decrypted", "bit-exact", "|corr| original", "|corr| encrypted",
             "key space log2", "key space", "encrypt × real time"], rows)
            + f"\n\n{len(waves)} utterances of {data.source}; PESQ {self.pesq_mode} at "
              f"{self.pesq_rate or data.sample_rate} Hz on the raw P.862 scale (paper A Table 7 reports 0.8888 "
              "encrypted / 4.4997 decrypted)."))
        return res


class RetrievalTime(Study):
    """Paper B Table 4 (:func:`speechret.evaluate.timing.retrieval_time_table`) and, when a
    checkpoint is given, paper B Table 5 / paper A Table 6 (:func:`~speechret.evaluate.timing.end_to_end_time`
    on ``n_queries`` utterances against the codes of the evaluation set)."""

    name = "retrieval_time"

    def __init__(self, n_items: int = 10000, n_classes: int = 10, hash_lengths: Sequence[int] = (64, 128, 256, 384, 512),
                 n_queries: int = 200, ber_threshold: float = 0.26, repeats: int = 3, cluster_flip: float = 0.25,
                 e2e_queries: int = 50, seed: int = 0) -> None:
        self.kw = dict(n_items=int(n_items), n_classes=int(n_classes), hash_lengths=tuple(int(h) for h in hash_lengths),
                       n_queries=int(n_queries), ber_threshold=float(ber_threshold), repeats=int(repeats),
                       cluster_flip=float(cluster_flip), seed=int(seed))
        self.e2e_queries = int(e2e_queries)

    def describe(self) -> dict[str, Any]:
        return dict(self.kw)

    def run(self, ctx: Context) -> Result:
        from speechret.evaluate import plots
        from speechret.evaluate.timing import end_to_end_time, format_markdown, retrieval_time_table

        res = Result()
        rows = retrieval_time_table(**self.kw)
        for r in rows:
            for k, v in r.items():
                if k != "bits":
                    res.metrics[f"time.{r['bits']}.{k}"] = v
        res.sections.append(("Retrieval time per query (paper B Table 4)", format_markdown(rows)))
        xs = [r["bits"] for r in rows]
        res.plots.append(plots.plot_lines(xs, {k: [r[k] for r in rows] for k in
                                               ("traversal_ms", "traversal_numpy_ms", "two_stage_ms", "faiss_flat_ms",
                                                "faiss_two_stage_ms")},
                                          ctx.out_dir / "retrieval_time.png", xlabel="hash bits", ylabel="ms per query",
                                          title="Traversal vs two-stage vs FAISS (paper B Table 4)", logy=True))
        if ctx.cfg.get("ckpt_path"):
            hasher = ctx.hasher(resolve_checkpoints(ctx.cfg.ckpt_path)[0])
            if hasher.hashing.variable_length:
                log.warning("end-to-end time: %s codes are variable-length; skipped", hasher.method)
            else:
                data = ctx.eval_data(hasher)
                res.metrics.update(set_metrics(data))
                db = hasher.codes_of_waves(data.waves)
                rng = np.random.default_rng(self.kw["seed"])
                q = rng.choice(len(data), size=min(self.e2e_queries, len(data)), replace=False)
                e2e = end_to_end_time(hasher, [data.waves[i] for i in q], db, ber_threshold=self.kw["ber_threshold"])
                res.metrics.update({f"e2e.{k}": v for k, v in e2e.items()})
                res.sections.append(("Feature learning + retrieval per query (paper B Table 5, paper A Table 6)",
                                     format_markdown(e2e)))
        return res
