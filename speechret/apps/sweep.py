"""Sweep summary: a Hydra callback that tabulates a multirun (e.g. over ``model.hash_bits``).

After ``python train.py -m experiment=cnn_hash model.hash_bits=64,128,256,384,512`` the sweep
directory holds ``summary.csv`` and ``summary.md``: one row per job with its overrides (hash bits
first), the chosen metrics (val mAP, accuracy, ...), epochs and wall time, read from each job's
``summary.json`` written by :func:`speechret.apps.train.train`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def collect(sweep_dir: str | Path, metrics: list[str]) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(Path(sweep_dir).glob("*/summary.json"), key=lambda p: (len(p.parent.name), p.parent.name)):
        s = json.loads(path.read_text())
        overrides = []
        ov_file = path.parent / ".hydra" / "overrides.yaml"
        if ov_file.is_file():
            overrides = [ln[2:].strip() for ln in ov_file.read_text().splitlines() if ln.startswith("- ")]
        row: dict[str, Any] = {"job": path.parent.name, "hash_bits": s.get("hash_bits")}
        for m in metrics:
            v = s["metrics"].get(m)
            row[m] = None if v is None else round(v, 4)
        row["epochs"] = s.get("epochs")
        row["wall_time_s"] = s.get("wall_time_s")
        row["overrides"] = " ".join(overrides)
        rows.append(row)
    return rows


def write_tables(rows: list[dict[str, Any]], sweep_dir: str | Path) -> tuple[Path, Path]:
    sweep_dir = Path(sweep_dir)
    cols = list(rows[0].keys()) if rows else ["job"]
    cols = [c for c in cols if any(r.get(c) is not None for r in rows)] or cols
    csv_path, md_path = sweep_dir / "summary.csv", sweep_dir / "summary.md"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


class SweepSummary(Callback):
    """Write ``summary.csv`` / ``summary.md`` into the sweep directory when a multirun ends."""

    def __init__(self, metrics: list[str] | None = None) -> None:
        self.metrics = list(metrics or ["val/map", "val/acc"])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = collect(sweep_dir, self.metrics)
        if not rows:
            return
        csv_path, md_path = write_tables(rows, sweep_dir)
        print(md_path.read_text())
        print(f"[speechret] sweep summary: {csv_path} and {md_path}")
