"""The main job (``make demo``) on the built-in default corpus.

Steps: generate the synthetic Mandarin corpus (espeak-ng) when missing → load it through
:class:`~speechret.data.datamodule.SpeechDataModule` → print a summary (items, speakers,
durations, label counts, splits) → apply every CPO to one utterance and print what each did
(power ratio, SNR against the original, correlation, distinct levels) → print the feature shapes
each paper's models consume, for one real batch → train a small model and print its accuracy and
mAP (``train_overrides`` in ``conf/demo.yaml``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from speechret.cpo import build_cpo
from speechret.training import train

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
log = logging.getLogger(__name__)


def corpus_tables(dm) -> list[Table]:
    s = dm.summary()
    t = Table(title=f"corpus {s['corpus']} at {s['root']} ({s['classes']} content classes)")
    for col in ("split", "items", "speakers", "total s", "min s", "mean s", "max s"):
        t.add_column(col, justify="right")
    for name in ("all", "train", "val", "test"):
        d = s[name]
        if not d.get("items"):
            t.add_row(name, "0", "", "", "", "", "")
            continue
        t.add_row(
            name, str(d["items"]), str(d["speakers"]), f"{d['total_duration']:.1f}",
            f"{d['min_duration']:.2f}", f"{d['mean_duration']:.2f}", f"{d['max_duration']:.2f}",
        )
    lab = Table(title="label counts (all splits)")
    lab.add_column("label", justify="right")
    lab.add_column("text")
    lab.add_column("items", justify="right")
    for label, n in sorted(s["all"]["label_counts"].items()):
        lab.add_row(str(label), dm.label_names.get(int(label), ""), str(n))
    return [t, lab]


def cpo_table(wave: torch.Tensor, names: list[str], seed: int) -> Table:
    t = Table(title="CPOs applied to one utterance")
    for col in ("op", "length", "power ratio (dB)", "SNR vs original (dB)", "correlation", "levels", "ms"):
        t.add_column(col, justify="right")
    x = wave[None]
    p0 = x.pow(2).mean()
    for name in names:
        op = build_cpo(name)
        g = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        y = op(x, generator=g)
        ms = (time.perf_counter() - t0) * 1e3
        err = (y - x).pow(2).mean()
        snr = 10 * torch.log10(p0 / err.clamp_min(1e-20))
        corr = np.corrcoef(x[0].numpy(), y[0].numpy())[0, 1]
        t.add_row(
            op.name, f"{y.shape[-1]}/{x.shape[-1]}", f"{10 * torch.log10(y.pow(2).mean() / p0):+.2f}",
            f"{snr:.1f}", f"{corr:.3f}", str(len(torch.unique(y))), f"{ms:.1f}",
        )
    return t


def feature_table(batch: dict, cfg: DictConfig) -> Table:
    t = Table(title=f"features of one batch of {batch['wave'].shape[0]} utterances (wave {tuple(batch['wave'].shape)})")
    for col in ("config", "paper", "module", "batch shape", "lengths", "ms"):
        t.add_column(col)
    papers = {"logmel": "A", "mfcc": "A", "logmel_image": "B", "svs": "C", "mfcc_seq": "C baseline"}
    for name in cfg.demo_features:
        fcfg = OmegaConf.load(CONF_DIR / "features" / f"{name}.yaml")
        module = instantiate(fcfg)
        t0 = time.perf_counter()
        with torch.no_grad():
            feats, lengths = module(batch["wave"], batch["wave_lengths"])
        ms = (time.perf_counter() - t0) * 1e3
        lo, hi = int(lengths.min()), int(lengths.max())
        t.add_row(name, papers.get(name, ""), type(module).__name__, str(tuple(feats.shape)),
                  str(lo) if lo == hi else f"{lo}-{hi}", f"{ms:.0f}")
    return t


@hydra.main(version_base="1.3", config_path="../conf", config_name="demo")
def main(cfg: DictConfig) -> None:
    console = Console(width=max(Console().width, 120))
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    dm = instantiate(cfg.data)
    console.print(f"[bold]1. default corpus[/bold]: {dm.corpus} at {dm.root}")
    dm.prepare_data()
    dm.setup()
    console.print(f"   ready in {time.perf_counter() - t0:.1f} s")
    for table in corpus_tables(dm):
        console.print(table)

    console.print("[bold]2. CPOs[/bold]")
    first = dm.datasets["train"][0]
    console.print(f"   utterance {first['id']} ({first['wave'].shape[0] / dm.sample_rate:.2f} s)")
    console.print(cpo_table(torch.from_numpy(first["wave"]), list(cfg.demo_cpos), cfg.seed))

    console.print("[bold]3. features per paper[/bold]")
    batch = next(iter(dm.train_dataloader()))
    console.print(feature_table(batch, cfg))

    console.print(f"[bold]4. train[/bold]: python train.py {' '.join(cfg.train_overrides)}")
    out_dir = Path(HydraConfig.get().runtime.output_dir) / "train"
    train_cfg = compose(config_name="train", overrides=[*cfg.train_overrides, f"paths.output_dir={out_dir}"])
    summary = train(train_cfg)
    m = summary["metrics"]
    t = Table(title=f"{summary['experiment']}: {summary['epochs']} epochs in {summary['wall_time_s']:.0f} s")
    for col in ("split", "accuracy", "mAP (Hamming ranking)"):
        t.add_column(col, justify="right")
    for split in ("val", "test"):
        t.add_row(split, f"{m.get(f'{split}/acc', float('nan')):.3f}", f"{m.get(f'{split}/map', float('nan')):.3f}")
    console.print(t)
    console.print(f"   best checkpoint: {summary['best_checkpoint']}")
    console.print(f"done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
