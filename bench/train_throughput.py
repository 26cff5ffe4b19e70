"""Training throughput per experiment: samples per second of forward + backward + optimizer step.

Features are computed inside the timed step (``prepare_batch`` on the device, as training does,
with the configured CPOs and augmentation: ``augment.concat`` re-packs the batch too; a step is
counted in the clips and seconds it was loaded with) unless the experiment caches them (below).
Until 2026-12-06 the step left the augmentation out, so earlier figures of augmented experiments
(``speechret_hash``, ``recipe=...``) time the model and features alone.  Prints a table; on a GPU use ``--device cuda
--precision bf16`` for bf16 autocast.

    .venv/bin/python bench/train_throughput.py                         # every experiment, CPU
    .venv/bin/python bench/train_throughput.py --experiments cnn_hash --device cuda --precision bf16
    .venv/bin/python bench/train_throughput.py --profile        # SVS models: profile + FLOP floor
    .venv/bin/python bench/train_throughput.py --changes        # speed-up of each issue-13 change

Experiments that cache their features (``data.cache_features=true``: the SVS experiments since
issue 13) compute them in ``setup`` and time the step without feature extraction, as training does
after its first pass; ``data.cache_features=false`` puts the extraction back into the timed step
(the setting of the earlier README numbers).

``--profile`` runs :mod:`bench/train_profile.py <train_profile>` instead (default experiments: the
four SVS experiments): feature extraction vs forward / backward, the top operators and layers by
self time, the step's FLOPs against the machine's measured dense conv3d / matmul FLOP/s.
Options that change the maths never appear here; those that do not can be compared by overrides,
e.g. ``model.net.fused=false`` (BiConvLSTM reference loop), ``model.net.channels_last=true``,
``model.compile=true``.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import train_profile  # noqa: E402

#: issue 13's speed-ups of paper C's SVS models, each a switch that leaves the maths unchanged
#: (tests/test_paper_c_speed.py checks each against its reference to float tolerance):
#: (name, override without it, override with it, experiments it applies to)
CHANGES = [
    ("SVS feature cache", "data.cache_features=false", "data.cache_features=true", ("cnn3d", "biconvlstm")),
    ("fused BiConvLSTM (one 4-gate conv, inputs convolved for all steps, both directions per step)",
     "model.net.fused=false", "model.net.fused=true", ("biconvlstm",)),
    ("channels-last 3D", "model.net.channels_last=false", "model.net.channels_last=true", ("cnn3d", "biconvlstm")),
    ("torch.compile", "model.compile=false", "model.compile=true", ("cnn3d", "biconvlstm")),
]
#: every experiment config (conf/experiment/*.yaml), so a new method is benchmarked without an edit here
ALL = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def measure(experiment: str, device: str, precision: str, batch_size: int, steps: int, threads: int | None,
            overrides: list[str]) -> dict:
    dm, model, opt = train_profile.setup_step(experiment, batch_size, overrides, device)
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(min(steps + 1, len(dm.train_dataloader())))]
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def step(b):
        # clips and seconds of the batch as loaded: augment.concat re-packs clips into fewer, longer
        # rows and speed perturbation changes lengths, neither of which is more data per step
        clips, seconds = b["wave"].shape[0], float(b["wave_lengths"].sum()) / dm.sample_rate
        b = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in b.items()}
        b = dm.prepare_batch(b, augment=True)  # a training batch: CPOs and augmentation as configured

        def closure():
            # the loss as a closure, as Lightning steps: sharpness=sam (speechret.models.sam) calls it twice
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = model.compute_loss(model(b["features"], b.get("feature_lengths")), b)
            loss.backward()
            return loss

        opt.step(closure)
        return clips, seconds

    step(batches[0])  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    n = audio = 0.0
    t0 = time.perf_counter()
    for b in batches[1:]:
        k, s = step(b)
        n += k
        audio += s
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    return {"experiment": experiment, "params_M": params / 1e6, "samples_s": n / dt, "audio_x_realtime": audio / dt,
            "steps": len(batches) - 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", nargs="*", default=None,
                    help="default: all (with --profile: the SVS experiments)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=["32", "bf16"], default="32")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    ap.add_argument("--changes", action="store_true", help="speed-up of each of issue 13's changes (CHANGES): "
                    "every SVS experiment given, without and with each change, the rest as configured")
    ap.add_argument("--only", nargs="*", default=None, metavar="WORD",
                    help="with --changes: only the changes whose name contains one of these words (e.g. fused cache)")
    ap.add_argument("--profile", action="store_true", help="profile one step per model against the FLOP floor "
                    "(bench/train_profile.py)")
    train_profile.add_args(ap)
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. data=dspspeech20")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.profile:
        train_profile.run(args.experiments or train_profile.SVS_EXPERIMENTS, args.device, args.precision,
                          args.batch_size, args.steps, args.overrides, args.repeats, args.top, not args.no_table)
        return
    if args.changes:
        exps = args.experiments or ["cnn3d_bilstm_ctc_cpu", "biconvlstm_ctc_cpu"]
        print(f"device={args.device} precision={args.precision} batch={args.batch_size} threads={torch.get_num_threads()}")
        print("| experiment | change | without (clips/s) | with (clips/s) | speed-up |\n|---|---|---|---|---|")
        for e in exps:
            for name, off, on, applies in CHANGES:
                if not any(a in e for a in applies) or (args.only and not any(w in name for w in args.only)):
                    continue
                r = [measure(e, args.device, args.precision, args.batch_size, args.steps, args.threads,
                             [*args.overrides, o])["samples_s"] for o in (off, on)]
                print(f"| {e} | {name} | {r[0]:.2f} | {r[1]:.2f} | {r[1] / r[0]:.2f}x |", flush=True)
        return
    args.experiments = args.experiments or ALL
    print(f"device={args.device} precision={args.precision} batch={args.batch_size} threads={torch.get_num_threads()}")
    print(f"{'experiment':<22}{'params (M)':>11}{'samples/s':>11}{'audio x RT':>12}{'steps':>7}")
    for e in args.experiments:
        r = measure(e, args.device, args.precision, args.batch_size, args.steps, args.threads, args.overrides)
        print(f"{r['experiment']:<22}{r['params_M']:>11.2f}{r['samples_s']:>11.1f}{r['audio_x_realtime']:>12.1f}{r['steps']:>7}",
              flush=True)


if __name__ == "__main__":
    main()
