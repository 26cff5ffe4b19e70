"""Size and per-clip latency of the exported hasher (speechret/export.py) beside the Hasher.

For each model: export it (TorchScript), then code ``--clips`` speech-like clips of ``--seconds``
one clip per call with the exported file (``load_exported``) and with the eager
:class:`~speechret.hashing.hasher.Hasher` (``hasher.codes([wave])``), after one warm-up call;
prints the file size in MB, the median ms per clip and the real-time factor (ms per clip / clip
duration), and checks the two give the same bits.

    .venv/bin/python bench/export_latency.py                          # random-weight models of
        speechret_hash, lstm_hash, cnn_hash (latency does not depend on the weights)
    .venv/bin/python bench/export_latency.py --ckpt logs/.../best.ckpt [--ckpt ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def random_checkpoint(experiment: str, out: Path) -> str:
    """A checkpoint of ``experiment`` (4 classes) with random weights, as train.py stores one."""
    from hydra import compose, initialize_config_dir

    from speechret.hashing.hasher import Hasher

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=[f"experiment={experiment}", "model.num_classes=4",
                                          f"paths.output_dir={out / 'run'}"])
    torch.manual_seed(0)
    h = Hasher.from_config(cfg)
    path = out / f"{experiment}.ckpt"
    torch.save({"speechret": h.config, "state_dict": h.module.state_dict()}, path)
    return str(path)


def clips(n: int, seconds: float, sr: int) -> list[np.ndarray]:
    from speechret.export import _example_clip

    return [_example_clip(int(round(seconds * sr)), sr, seed=100 + i).numpy() for i in range(n)]


def timed(fn, waves: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
    fn(waves[0])  # warm-up (TorchScript profiles its first runs)
    times, out = [], []
    for w in waves:
        t0 = time.perf_counter()
        out.append(np.asarray(fn(w)))
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", action="append", help="checkpoint(s); default: random-weight models")
    ap.add_argument("--experiments", nargs="+", default=["speechret_hash", "lstm_hash", "cnn_hash"])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from speechret.export import export_hasher, load_exported
    from speechret.hashing.hasher import Hasher

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpts = args.ckpt or [random_checkpoint(e, tmp) for e in args.experiments]
        for ckpt in ckpts:
            out = export_hasher(ckpt, tmp / (Path(ckpt).stem + ".pt"))
            exported = load_exported(out)
            hasher = Hasher.from_checkpoint(ckpt)
            waves = clips(args.clips, args.seconds, exported.sample_rate)
            t_exp, got = timed(lambda w: exported(w).numpy(), waves)
            t_eager, want = timed(lambda w: hasher.codes([w])[0], waves)
            same = all(np.array_equal(a, b) for a, b in zip(got, want))
            rows.append((Path(ckpt).stem, exported.method, exported.code_bits, out.stat().st_size / 2**20, t_exp,
                         t_eager, same))
    clip_ms = 1000 * args.seconds
    print(f"{args.clips} clips of {args.seconds:g} s, one clip per call, {args.threads} thread(s), torch {torch.__version__}")
    print("| model | method | bits | file MB | exported ms/clip | x real time | Hasher ms/clip | x real time | same bits |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, method, bits, mb, te, th, same in rows:
        print(f"| {name} | {method} | {bits} | {mb:.2f} | {te:.1f} | {te / clip_ms:.4f} | {th:.1f} | {th / clip_ms:.4f} | "
              f"{'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
