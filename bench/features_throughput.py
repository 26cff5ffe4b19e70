"""Throughput of the feature extractors (speechret.features).

Prints, per feature type, the per-item output shape, median wall time per batch and per clip,
seconds of audio processed per second of wall time (= "x real time") and the real-time factor
RTF = wall / audio (lower is faster).  Input: a batch of synthetic speech-like clips (harmonic
tone with a moving pitch plus noise); the cost of every extractor depends only on the length.

    .venv/bin/python bench/features_throughput.py                      # 1 CPU thread, 16 x 4 s
    .venv/bin/python bench/features_throughput.py --device cuda --batch 64
    .venv/bin/python bench/features_throughput.py --features svs mfcc --seconds 10 --threads 4
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechret.features import build_features, preset_names  # noqa: E402


def _speechlike(batch: int, n: int, sr: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / sr
    f0 = 120 + 80 * torch.rand(batch, 1, generator=g)
    phase = 2 * math.pi * torch.cumsum(f0 * (1 + 0.2 * torch.sin(2 * math.pi * 0.5 * t)), dim=1) / sr
    x = sum(torch.sin(k * phase) / k for k in range(1, 8))
    return 0.2 * x + 0.01 * torch.randn(batch, n, generator=g)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    presets = preset_names()  # conf/features/<name>.yaml
    ap.add_argument("--features", nargs="+", default=presets, help=f"presets ({', '.join(presets)})")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1 core)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--autocast", action="store_true", help="run under bf16 autocast (features stay fp32)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n = int(round(args.seconds * args.sample_rate))
    wave = _speechlike(args.batch, n, args.sample_rate).to(device)
    audio_s = args.batch * args.seconds
    lengths = torch.full((args.batch,), n, device=device)

    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"# torch {torch.__version__} | device {device} ({dev_name}) | threads {torch.get_num_threads()} | "
        f"batch {args.batch} x {args.seconds:g} s = {audio_s:g} s audio | warmup {args.warmup}, repeats {args.repeats}"
    )
    header = (
        f"{'feature':<14} {'output (per item)':<20} {'ms/batch':>9} {'ms/clip':>8} "
        f"{'audio s / wall s (x real time)':>31} {'RTF':>8}"
    )
    print(header)
    print("-" * len(header))
    for name in args.features:
        ext = build_features(name).to(device).eval()
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.autocast):
            for _ in range(args.warmup):
                ext(wave, lengths)
            _sync(device)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                ext(wave, lengths)
                _sync(device)
                times.append(time.perf_counter() - t0)
        best = sorted(times)[len(times) // 2]  # median
        speed = audio_s / best
        shape = "x".join(str(d) for d in ext.output_shape(n))
        print(
            f"{name:<14} {shape:<20} {best * 1e3:>9.1f} {best * 1e3 / args.batch:>8.2f} "
            f"{speed:>30.0f}x {best / audio_s:>8.5f}"
        )


if __name__ == "__main__":
    main()
