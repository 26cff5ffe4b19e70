"""End-to-end query latency and index-build throughput on one CPU core.

* query latency of a 4 s clip: load (soundfile) + features + model + hash + FAISS search, p50/p99
  over repeated queries, beside real time (4 s of audio);
* index-build throughput: seconds of audio indexed per second of wall time (load, features,
  model, hash, encrypt, SQLite + blobs, FAISS sync).

    .venv/bin/python bench/e2e_latency.py --ckpt logs/.../checkpoints/epoch_005.ckpt [--corpus data/synth_cmn]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from speechret.audio import save_audio
from speechret.crypto import build_cipher
from speechret.crypto.aead import generate_key_file
from speechret.data.corpora import load_corpus
from speechret.hashing.hasher import Hasher
from speechret.library.indexer import index_items, open_or_create
from speechret.library.query import search_codes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--corpus", default="data/synth_cmn", help="synthetic corpus folder (manifest.csv)")
    ap.add_argument("--kind", default="synthetic")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)

    hasher = Hasher.from_checkpoint(args.ckpt)
    items = list(load_corpus(args.kind, args.corpus))
    with tempfile.TemporaryDirectory() as tmp:
        key = generate_key_file(Path(tmp) / "k.key")
        cipher = build_cipher("aes_gcm", str(key))
        lib = open_or_create(Path(tmp) / "lib", hasher, cipher, args.ckpt, {"kind": "flat", "params": {}})
        rep = index_items(lib, hasher, items, cipher, progress=False)
        print(f"index build: {rep.added} items, {rep.audio_seconds:.0f} s of audio in {rep.wall_seconds:.1f} s "
              f"= {rep.seconds_of_audio_per_second:.1f} s of audio per second (x real time), {args.threads} thread(s)")

        clip = Path(tmp) / "clip.wav"
        src = items[0]
        from speechret.audio import load_audio

        w = load_audio(src.path, hasher.sample_rate)
        save_audio(clip, np.resize(w, 4 * hasher.sample_rate) * 0.9, hasher.sample_rate)
        stages = {"load": [], "features+model+hash": [], "search": [], "total": []}
        for i in range(args.queries + 1):
            t0 = time.perf_counter()
            wave = load_audio(clip, hasher.sample_rate)
            t1 = time.perf_counter()
            codes = hasher.codes_of_waves([wave])
            t2 = time.perf_counter()
            search_codes(lib, codes, mode="topk" if "topk" in hasher.hashing.search_modes else "full_speech", k=10)
            t3 = time.perf_counter()
            if i == 0:
                continue  # warm-up (index load, JIT)
            for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                stages[k].append(v * 1e3)
        print(f"query latency, 4 s clip, library of {len(lib)} items ({hasher.method}), {args.threads} thread(s):")
        print(f"{'stage':<22}{'p50 ms':>10}{'p99 ms':>10}")
        for k, v in stages.items():
            print(f"{k:<22}{np.percentile(v, 50):>10.2f}{np.percentile(v, 99):>10.2f}")
        total = np.percentile(stages["total"], 50) / 1e3
        print(f"real-time factor: {total / 4.0:.4f} ({4.0 / total:.0f}x faster than real time)")


if __name__ == "__main__":
    main()
