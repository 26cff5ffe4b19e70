"""Where a training step of paper C's SVS models spends its time, and how far it is from the FLOP floor.

For every experiment (default: the four SVS experiments, paper and CPU-feasible sizes) one
training batch is prepared and then:

1. **Feature extraction** (front end + SVS, ``SpeechDataModule.prepare_batch`` with the feature
   cache off) is timed on its own: with ``data.cache_features=true`` (the SVS experiments'
   default) it is paid once per item, not once per epoch.
2. **FLOPs** of one forward + backward pass: ``torch.utils.flop_counter.FlopCounterMode``
   (convolutions and matrix products, backward included) plus the LSTMs, which that counter does
   not see on the CPU (``aten::lstm`` runs as one fused kernel): 8·H·(I + H) per frame and
   direction forward, twice that backward.
3. **Step time**: forward + CTC loss + backward + optimizer step, median of ``--steps`` timed
   steps after a warm-up, features precomputed (as the cache gives them).
4. **Floor**: the machine's dense conv3d and matmul FLOP/s, measured here by a short
   microbenchmark (best of ``--repeats``; conv3d 32 -> 64 channels, 3x3x3, on an 8 x 38 x 77
   volume, float32 forward; matmul 1024^3). Floor time = all FLOPs at the higher of the two rates
   (a lower bound: a convolution lowered to GEMM can reach the matmul rate, and on a loaded
   machine the models' convolutions beat the small conv3d microbenchmark); reported: achieved
   FLOP/s = FLOPs / step time, and step / floor
   (1 = as fast as dense arithmetic allows; issue 13's target for the paper configuration: <= 2),
   the way ``bench/search_latency.py`` reports its distance from the memory-scan floor.
5. **Profile** (``torch.profiler``) of one more step, with ranges ``features`` / ``forward`` /
   ``backward`` / ``optimizer`` and one per top-level layer of the network (forward), printed as
   the ranges' totals and the ``--top`` operators by self time.

    .venv/bin/python bench/train_profile.py                                  # 4 SVS experiments, CPU
    .venv/bin/python bench/train_profile.py --experiments biconvlstm_ctc_cpu model.net.fused=false
    .venv/bin/python bench/train_profile.py --device cuda --precision bf16   # on a GPU
    .venv/bin/python bench/train_throughput.py --profile ...                 # the same, from there

Extra positional arguments are Hydra overrides for every experiment (e.g. ``data=dspspeech20
data.root=...``, ``model.net.channels_last=true``, ``model.compile=true``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hydra import compose, initialize_config_dir  # noqa: E402

from speechret.apps.train import build_datamodule, build_model  # noqa: E402

SVS_EXPERIMENTS = ["cnn3d_bilstm_ctc", "biconvlstm_ctc", "cnn3d_bilstm_ctc_cpu", "biconvlstm_ctc_cpu"]
_CONV_OPS = ("convolution", "conv")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _best_time(fn, device: str, repeats: int) -> float:
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def dense_rates(device: str = "cpu", dtype: torch.dtype = torch.float32, repeats: int = 5) -> dict[str, float]:
    """FLOP/s of a dense conv3d and a dense matmul on ``device`` (forward, best of ``repeats``)."""
    x = torch.randn(1, 32, 8, 38, 77, device=device, dtype=dtype)
    conv = nn.Conv3d(32, 64, 3, padding=1, bias=False).to(device=device, dtype=dtype)
    conv_flops = 2 * 64 * 8 * 38 * 77 * 32 * 27
    a = torch.randn(1024, 1024, device=device, dtype=dtype)
    b = torch.randn(1024, 1024, device=device, dtype=dtype)
    with torch.no_grad():
        t_conv = _best_time(lambda: conv(x), device, repeats)
        t_mm = _best_time(lambda: a @ b, device, repeats)
    return {"conv3d": conv_flops / t_conv, "matmul": 2 * 1024**3 / t_mm}


class _LSTMFlops:
    """Forward hooks adding the FLOPs of ``nn.LSTM`` modules (invisible to FlopCounterMode on CPU)."""

    def __init__(self, model: nn.Module) -> None:
        self.flops = 0
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, nn.LSTM)]

    def _hook(self, mod: nn.LSTM, args, out) -> None:
        x = args[0]
        steps = x.data.shape[0] if isinstance(x, nn.utils.rnn.PackedSequence) else x.shape[0] * x.shape[1]
        dirs = 2 if mod.bidirectional else 1
        h = mod.hidden_size
        for layer in range(mod.num_layers):
            i = mod.input_size if layer == 0 else h * dirs
            self.flops += 3 * dirs * steps * 8 * h * (i + h)  # forward + backward (2x)

    def remove(self) -> None:
        for hd in self.handles:
            hd.remove()


def count_flops(model, batch, autocast) -> tuple[int, int]:
    """``(convolution FLOPs, other FLOPs)`` of one forward + backward pass."""
    lstm = _LSTMFlops(model)
    try:
        with FlopCounterMode(display=False) as fc:
            with autocast:
                loss = model.compute_loss(model(batch["features"], batch.get("feature_lengths")), batch)
            loss.backward()
    finally:
        lstm.remove()
    model.zero_grad(set_to_none=True)
    by_op = fc.get_flop_counts().get("Global", {})
    conv = sum(v for k, v in by_op.items() if any(c in str(k) for c in _CONV_OPS))
    return int(conv), int(fc.get_total_flops() - conv + lstm.flops)


class _LayerRanges:
    """A ``torch.profiler`` range around the forward of each top-level layer of the network."""

    def __init__(self, net: nn.Module) -> None:
        self.handles, self.open = [], {}
        for name, mod in net.named_children():
            self.handles.append(mod.register_forward_pre_hook(self._enter(f"layer:{name}")))
            self.handles.append(mod.register_forward_hook(self._exit(f"layer:{name}")))

    def _enter(self, name):
        def hook(mod, args):
            rf = torch.profiler.record_function(name)
            rf.__enter__()
            self.open.setdefault(name, []).append(rf)
        return hook

    def _exit(self, name):
        def hook(mod, args, out):
            self.open[name].pop().__exit__(None, None, None)
        return hook

    def remove(self) -> None:
        for hd in self.handles:
            hd.remove()


def setup_step(experiment: str, batch_size: int, overrides: list[str], device: str):
    """``(datamodule, model, optimizer)`` of one experiment, ready for timed training steps (also
    used by ``bench/train_throughput.py``)."""
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=[f"experiment={experiment}", f"data.batch_size={batch_size}",
                                          "paths.output_dir=/tmp/speechret-bench", *overrides])
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup()
    model = build_model(cfg, dm).to(device)
    model.setup("fit")  # model.compile=true compiles here, as in training
    model.train()
    return dm, model, model.build_optimizer()  # no schedule: it does not change what a step costs


def profile_experiment(experiment: str, device: str, precision: str, batch_size: int, steps: int,
                       overrides: list[str], rates: dict[str, float], top: int) -> dict:
    dm, model, opt = setup_step(experiment, batch_size, ["data.cache_features=false", *overrides], device)
    loader = iter(dm.train_dataloader())
    raw = next(loader)
    raw = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in raw.items()}
    autocast = (torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
                if precision == "bf16" else nullcontext())

    def features():
        return dm.prepare_batch(dict(raw), augment=True)  # a training batch, augmentation included

    t_feat = _best_time(features, device, 2)
    batch = features()

    def step():
        with autocast:
            loss = model.compute_loss(model(batch["features"], batch.get("feature_lengths")), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    _sync(device)
    times = []
    for _ in range(max(1, steps)):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    t_step = statistics.median(times)
    conv, other = count_flops(model, batch, autocast)
    # the floor is a lower bound on the step's time: every FLOP at the best dense rate measured here
    # (a convolution lowered to GEMM can run at the matmul rate, and the models' own convolutions
    # were seen beating the conv3d microbenchmark on a loaded machine)
    floor = (conv + other) / max(rates["conv3d"], rates["matmul"])

    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    ranges = _LayerRanges(model.net)
    try:
        with torch.profiler.profile(activities=activities) as prof:
            with torch.profiler.record_function("features"):
                b2 = features()
            with torch.profiler.record_function("forward"), autocast:
                loss = model.compute_loss(model(b2["features"], b2.get("feature_lengths")), b2)
            opt.zero_grad(set_to_none=True)
            with torch.profiler.record_function("backward"):
                loss.backward()
            with torch.profiler.record_function("optimizer"):
                opt.step()
            _sync(device)
    finally:
        ranges.remove()
    events = prof.key_averages()
    key = "self_device_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    phases = {e.key: e.cpu_time_total / 1e6 for e in events
              if e.key in ("features", "forward", "backward", "optimizer") or e.key.startswith("layer:")}
    n = int(batch["features"].shape[0])
    frames = int(batch["feature_lengths"].sum())
    return {"experiment": experiment, "clips": n, "frames": frames, "feat_s": t_feat, "step_s": t_step,
            "gflop": (conv + other) / 1e9, "conv_share": conv / max(1, conv + other),
            "achieved": (conv + other) / t_step, "floor_s": floor, "ratio": t_step / floor,
            "params_M": sum(p.numel() for p in model.parameters()) / 1e6, "phases": phases,
            "table": events.table(sort_by=key, row_limit=top)}


def run(experiments: list[str], device: str = "cpu", precision: str = "32", batch_size: int = 8, steps: int = 3,
        overrides: list[str] | None = None, repeats: int = 5, top: int = 15, show_table: bool = True) -> list[dict]:
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    rates = dense_rates(device, dtype, repeats)
    print(f"# device={device} precision={precision} threads={torch.get_num_threads()} batch={batch_size}; "
          f"dense conv3d {rates['conv3d'] / 1e9:.1f} GFLOP/s, matmul {rates['matmul'] / 1e9:.1f} GFLOP/s")
    header = (f"| {'experiment':<22} | {'params M':>8} | {'clips':>5} | {'frames':>6} | {'features s':>10} | "
              f"{'step s':>7} | {'clips/s':>7} | {'GFLOP':>7} | {'conv %':>6} | {'GFLOP/s':>7} | "
              f"{'floor s':>7} | {'step/floor':>10} |")
    rows = []
    for e in experiments:
        r = profile_experiment(e, device, precision, batch_size, steps, list(overrides or []), rates, top)
        rows.append(r)
        if show_table:
            print(f"\n## {e}: ranges (total s): " + ", ".join(f"{k} {v:.3f}" for k, v in r["phases"].items()))
            print(r["table"])
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['experiment']:<22} | {r['params_M']:>8.2f} | {r['clips']:>5} | {r['frames']:>6} | "
              f"{r['feat_s']:>10.3f} | {r['step_s']:>7.3f} | {r['clips'] / r['step_s']:>7.2f} | {r['gflop']:>7.2f} | "
              f"{100 * r['conv_share']:>6.1f} | {r['achieved'] / 1e9:>7.2f} | {r['floor_s']:>7.3f} | "
              f"{r['ratio']:>10.2f} |", flush=True)
    return rows


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--repeats", type=int, default=5, help="microbenchmark repetitions (best of)")
    ap.add_argument("--top", type=int, default=15, help="operators listed by self time")
    ap.add_argument("--no-table", action="store_true", help="only the summary table")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", nargs="*", default=SVS_EXPERIMENTS)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=["32", "bf16"], default="32")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up (median)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    add_args(ap)
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. data=dspspeech20")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.experiments, args.device, args.precision, args.batch_size, args.steps, args.overrides,
        args.repeats, args.top, not args.no_table)


if __name__ == "__main__":
    main()
