"""Speech-cipher throughput in x real time (16 kHz, 16-bit mono audio).

    python bench/cipher_throughput.py [--seconds 60] [--repeat 3]

For each cipher (aes_gcm, hyperchaotic, rossler) one warm-up call (numba JIT / first use) is made
and excluded; then encrypt(item_id, pcm) -> blob and decrypt(item_id, blob) are timed ``--repeat``
times and the best time is reported as audio seconds per wall-clock second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechret.crypto import (  # noqa: E402
    AesGcmCipher, HyperchaoticCipher, HyperchaoticKey, RosslerCipher, RosslerKey, generate_key_file,
)

SR = 16000


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio duration (default 60 s)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    n = int(args.seconds * SR)
    rng = np.random.default_rng(0)
    t = np.arange(n) / SR
    pcm = (8000 * np.sin(2 * np.pi * 150 * t) + 500 * rng.standard_normal(n)).astype(np.int16)

    with tempfile.TemporaryDirectory() as d:
        ciphers = [
            AesGcmCipher(generate_key_file(os.path.join(d, "bench.key"))),
            HyperchaoticCipher(HyperchaoticKey.paper_demo()),
            RosslerCipher(RosslerKey.demo()),
        ]
        print(f"audio: {args.seconds:g} s, 16 kHz, int16 mono ({n} samples); best of {args.repeat}; JIT warm-up excluded")
        print(f"{'cipher':<14}{'encrypt s':>11}{'x real time':>13}{'decrypt s':>11}{'x real time':>13}")
        for c in ciphers:
            c.decrypt("warm", c.encrypt("warm", pcm[:SR]))  # JIT compile / first-call costs
            blob = c.encrypt("bench", pcm)
            assert np.array_equal(c.decrypt("bench", blob), pcm)
            te = best(lambda: c.encrypt("bench", pcm), args.repeat)
            td = best(lambda: c.decrypt("bench", blob), args.repeat)
            print(f"{c.name:<14}{te:>11.4f}{args.seconds / te:>13.0f}{td:>11.4f}{args.seconds / td:>13.0f}")


if __name__ == "__main__":
    main()
