"""What an evaluation leaves in its run directory: ``metrics.json`` and ``report.md``.

Every protocol and study ends in a :class:`Result` — flat metrics, report sections (title,
markdown) and plot files — which :func:`write_outputs` writes: ``metrics.json`` (flat keys, NaN and
infinities as ``null``, so strict JSON) and ``report.md`` (a title, the header lines of
:func:`report_header` — the evaluation set first — then the sections and the embedded plots).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: metrics printed on the console at the end of a run (those a result has)
SUMMARY_KEYS = ("map", "precision", "recall", "f1", "threshold", "identity_recall", "keyword_recall", "n_queries",
                "pesq_encrypted", "pesq_decrypted", "decrypt_bit_exact", "hash_lengths")


@dataclass
class Result:
    """What a protocol run leaves: flat metrics, report sections (title, markdown), plot files."""

    metrics: dict[str, Any] = field(default_factory=dict)
    sections: list[tuple[str, str]] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "–"
            if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
                return f"{v:.3g}"
            return f"{v:.4f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def json_safe(v: Any) -> Any:
    """``v`` as strict JSON values: numpy scalars as Python numbers, NaN / ±inf as None."""
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, Mapping):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


def write_outputs(out_dir: Path, result: Result, title: str, header: Mapping[str, Any]) -> dict[str, Path]:
    """``metrics.json`` (NaN → null) and ``report.md`` (header, sections, embedded plots)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    mpath = out_dir / "metrics.json"
    mpath.write_text(json.dumps(json_safe(result.metrics), indent=2, sort_keys=True))
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    for sec_title, body in result.sections:
        lines += ["", f"## {sec_title}", "", body.rstrip()]
    if result.plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.name})" for p in result.plots]
    rpath = out_dir / "report.md"
    rpath.write_text("\n".join(lines) + "\n")
    return {"metrics": mpath, "report": rpath}


def report_header(protocol_name: str, metrics: Mapping[str, Any], rest: Mapping[str, Any]) -> dict[str, Any]:
    """The report's first lines: the evaluation set (and whether it includes training data), how
    the thresholds were chosen when the validation split could not serve, then the protocol."""
    head: dict[str, Any] = {}
    if metrics.get("eval_set_description"):
        head["evaluation set"] = f"`{metrics.get('eval_set')}` — {metrics['eval_set_description']}"
    if metrics.get("threshold_note"):
        head["thresholds"] = metrics["threshold_note"]
    if metrics.get("views"):
        head["views"] = f"{metrics['views']} (evaluate.views: the codes of each clip)"
    if metrics.get("hash_options"):
        opts = ", ".join(f"{k}={v}" for k, v in dict(metrics["hash_options"]).items())
        head["hash options"] = (f"{opts} (evaluate.hash_options, laid over the checkpoint's model.hash_options: "
                                "codes made otherwise than in training)")
    head["protocol"] = protocol_name
    head.update({k: v for k, v in rest.items() if k != "protocol"})
    return head


def print_summary(out_dir: Path, result: Result) -> None:
    """Where the outputs went, the evaluation set and the main metrics, on the console."""
    m = result.metrics
    print(f"[speechret] evaluation written to {out_dir} (metrics.json, report.md, {len(result.plots)} plots)")
    if m.get("eval_set"):
        print(f"[speechret] evaluation set: {m['eval_set']} — {m.get('eval_set_description', '')}")
    shown = {k: m[k] for k in SUMMARY_KEYS if k in m}
    print(f"[speechret] {shown}")
