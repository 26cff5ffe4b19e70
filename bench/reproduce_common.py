"""Shared machinery of the paper reproduction scripts (``bench/reproduce_paper_{a,b,c}.py``).

Each script trains the paper's models with ``train.py`` (speaker-disjoint split), evaluates them
with ``evaluate.py`` on data they never trained or validated on (``evaluate.set``: ``unseen`` with
the ``data=...`` the scripts pass — the checkpoints' test speakers) and writes
``reports/paper_<x>.md``: the training CPOs and each evaluation set, every table of the paper with
our numbers beside the published ones, and the exact commands that produced ours.  Every step is a
subprocess running the public entry points, so the report's commands can be pasted as they are.

Profiles: ``--profile quick`` (default) trims epochs and query counts so a 2-core CPU finishes in
about half an hour per paper; ``--profile paper`` uses the papers' settings (GPU recommended:
add ``--train-args trainer=gpu``).  ``--reuse`` skips a training or evaluation run whose output
folder already holds a result made by the same command from the same composed config (and, for an
evaluation, the same checkpoint bytes): :func:`run_digest`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def default_dsp_root() -> str:
    env = os.environ.get("SPEECHRET_SHARED_DATA")
    base = Path(env) if env else REPO.parent / "shared" / "data"
    return str(base / "dspspeech20")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--profile", choices=["quick", "paper"], default="quick")
    p.add_argument("--out", default=None, help="run folder (default logs/reproduce/<paper>)")
    p.add_argument("--report", default=None, help="report file (default reports/<paper>.md)")
    p.add_argument("--reuse", action="store_true",
                   help="skip runs whose result exists for the same command, composed config and checkpoint")
    p.add_argument("--train-args", nargs="*", default=[], help="extra train.py overrides (e.g. trainer=gpu)")
    p.add_argument("--eval-args", nargs="*", default=[], help="extra evaluate.py overrides (e.g. evaluate.device=cuda)")
    p.add_argument("--dsp-root", default=default_dsp_root())
    return p


class Runner:
    """Runs ``train.py`` / ``evaluate.py`` in subprocesses and remembers the commands."""

    def __init__(self, out: Path, reuse: bool = False, train_args: Sequence[str] = (),
                 eval_args: Sequence[str] = (), report_only: bool = False) -> None:
        self.out = Path(out).resolve()
        # report_only (a bench's --report-only): never train; a finished training is reused even when
        # its command, composed config or checkpoint changed since (said so), a missing one is an error.
        # A finished evaluation is reused the same way (said so); a missing one is run
        self.reuse, self.report_only = reuse or report_only, report_only
        self.train_args, self.eval_args = list(train_args), list(eval_args)
        self.commands: list[tuple[str, str, float]] = []  # (what, command, seconds)
        self.evals: list[tuple[str, dict[str, Any]]] = []  # (name, metrics.json) of every evaluation

    def _run(self, what: str, script: str, overrides: Sequence[str], run_dir: Path, result: str,
             never_run: bool = False, stale_ok: bool = False) -> Path:
        cmd = [sys.executable, script, *overrides, f"hydra.run.dir={run_dir}"]
        shown = " ".join(shlex.quote(c) for c in ["python", script, *overrides])
        stamp = run_dir / "command.txt"
        stamped = f"{shown}\n# composed config and checkpoint: {run_digest(script, overrides)}\n"
        if never_run or (stale_ok and (run_dir / result).is_file()):
            if not (run_dir / result).is_file():
                raise RuntimeError(f"{what}: --report-only trains nothing, and {run_dir / result} does not exist")
            if not stamp.is_file() or stamp.read_text() != stamped:
                print(f"[reproduce] report-only: reusing {what} although its command, composed config or checkpoint "
                      f"changed since {run_dir}", flush=True)
            took = run_dir / "seconds.txt"
            self.commands.append((what, shown, float(took.read_text()) if took.is_file() else float("nan")))
            return run_dir
        if self.reuse and (run_dir / result).is_file() and stamp.is_file():
            if stamp.read_text() == stamped:
                print(f"[reproduce] reuse {what}: {run_dir}", flush=True)
                took = run_dir / "seconds.txt"
                self.commands.append((what, shown, float(took.read_text()) if took.is_file() else float("nan")))
                return run_dir
            print(f"[reproduce] rerun {what}: its command, composed config or checkpoint changed since {run_dir}",
                  flush=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        print(f"[reproduce] {what}: {shown}", flush=True)
        t0 = time.perf_counter()
        with open(run_dir / "stdout.log", "w") as log:
            rc = subprocess.call(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        dt = time.perf_counter() - t0
        if rc != 0 or not (run_dir / result).is_file():
            tail = (run_dir / "stdout.log").read_text()[-3000:]
            raise RuntimeError(f"{what} failed (rc={rc}); see {run_dir / 'stdout.log'}\n{tail}")
        stamp.write_text(stamped)
        (run_dir / "seconds.txt").write_text(f"{dt:.1f}")
        self.commands.append((what, shown, dt))
        print(f"[reproduce]   done in {dt:.0f} s", flush=True)
        return run_dir

    def train(self, name: str, overrides: Sequence[str], checkpoint: str = "best") -> dict[str, Any]:
        """``train.py`` with ``overrides``; its ``summary.json``, which must name a ``checkpoint``
        (``best``: the validation-chosen one; ``last``: a run without validation, e.g. a refit)."""
        d = self._run(f"train {name}", "train.py", [*overrides, *self.train_args, "logger=csv"],
                      self.out / "train" / name, "summary.json", never_run=self.report_only)
        summary = json.loads((d / "summary.json").read_text())
        if not summary.get(f"{checkpoint}_checkpoint"):
            raise RuntimeError(f"train {name}: no {checkpoint} checkpoint in {d}")
        return summary

    def evaluate(self, name: str, overrides: Sequence[str]) -> dict[str, Any]:
        d = self._run(f"evaluate {name}", "evaluate.py", [*overrides, *self.eval_args], self.out / "eval" / name,
                      "metrics.json", stale_ok=self.report_only)
        m = json.loads((d / "metrics.json").read_text())
        m["_dir"] = str(d)
        self.evals.append((name, m))
        return m


def run_digest(script: str, overrides: Sequence[str]) -> str:
    """What ``--reuse`` compares besides the command line: a digest of the config ``script``
    composes from ``overrides`` (``conf/<script stem>.yaml``, unresolved: a changed default in any
    config file changes it) and of the bytes of every ``ckpt_path=`` file (a retrained checkpoint
    under the same name changes it).  Code is not hashed: a change in ``speechret/`` that keeps the
    configs is reused, so start a fresh ``--out`` after one that changes results."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from speechret.config import CONF_DIR
    from speechret.library.layout import file_sha256

    keep = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(Path(script).stem, overrides=keep)
    h = hashlib.sha256(OmegaConf.to_yaml(cfg, resolve=False).encode())
    for o in keep:
        if o.startswith("ckpt_path="):
            ckpt = Path(o.split("=", 1)[1])
            ckpt = ckpt if ckpt.is_absolute() else REPO / ckpt  # the runs' working directory
            if ckpt.is_file():
                h.update(file_sha256(ckpt).encode())
    return h.hexdigest()[:16]


def recipe_overrides(name: str) -> list[str]:
    """The training overrides of a ``--recipe`` option: ``recipe=<name>`` (``conf/recipe/``), none for ``none``."""
    return [] if name == "none" else [f"recipe={name}"]


def parse_shard(p: argparse.ArgumentParser, value: str | None) -> tuple[int, int]:
    """``--shard I/N`` as ``(I, N)`` (``(0, 1)`` when absent); a bad value is a parser error."""
    shard = tuple(int(x) for x in value.split("/")) if value else (0, 1)
    if len(shard) != 2 or not 0 <= shard[0] < shard[1]:
        p.error(f"--shard {value}: I must lie in [0, N)")
    return shard


# ------------------------------------------------------------------------------ formatting


def fmt(v: Any, pct: bool = False, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, str):
        return v
    if pct:
        return f"{100 * v:.2f}%"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.3g}"
    return f"{v:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(v if isinstance(v, str) else fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def delta(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or not (math.isfinite(ours) and math.isfinite(theirs)):
        return "–"
    return f"{ours - theirs:+.4f}"


def portable(cmd: str) -> str:
    """A command as a user would type it from the repository root (no machine-specific prefixes)."""
    return cmd.replace(str(REPO) + "/", "").replace(str(REPO.parent) + "/", "../")


def data_section(runner: Runner, training_cpos: str) -> tuple[str, str]:
    """The report section that says what the models trained with and what they were evaluated on:
    the training CPOs, then each evaluation run's set (``eval_set`` / ``eval_set_description`` of
    its metrics.json — the checkpoint's unheard data, or a study that needs no model)."""
    rows = []
    for name, m in runner.evals:
        desc = portable(m.get("eval_set_description") or "–")
        if m.get("eval_includes_training_data"):
            desc = "**includes training data** — " + desc
        rows.append([name, f"`{m.get('eval_set', '–')}`", desc, str(m.get("n_eval_items", "–")),
                     str(m.get("n_eval_speakers", "–"))])
    body = (f"**Training CPOs**: {training_cpos}\n\n**Evaluation sets** (`evaluate.set`; none holds an item "
            "— or, for the speaker protocols cross_speaker and keyword, a speaker — that the evaluated checkpoint "
            "trained or validated on, unless marked):\n\n"
            + table(["evaluation", "set", "what it holds", "items", "speakers"], rows))
    return "Training and evaluation data", body


def write_report(path: Path, title: str, intro: str, sections: Sequence[tuple[str, str]], runner: Runner,
                 profile: str, started: float, training_cpos: str = "") -> Path:
    """``reports/<paper>.md``: title, intro, the training CPOs and evaluation sets
    (:func:`data_section`), the paper's tables and the commands that made them."""
    spent = sum(dt for _, _, dt in runner.commands if math.isfinite(dt))
    lines = [f"# {title}", "", intro.strip(), "",
             f"Profile: `{profile}`. Generated {time.strftime('%Y-%m-%d %H:%M')}; the runs took "
             f"{spent / 60:.1f} min on {os.cpu_count()} CPU cores (no GPU). "
             f"Run folders: `{runner.out.relative_to(REPO) if runner.out.is_relative_to(REPO) else runner.out}`."]
    sections = [data_section(runner, training_cpos or "not stated"), *sections]
    for t, body in sections:
        lines += ["", f"## {t}", "", body.strip()]
    lines += ["", "## Commands", "", "Every number above comes from these runs (paths are the runs' `hydra.run.dir`):", ""]
    for what, cmd, dt in runner.commands:
        took = "time not recorded" if not math.isfinite(dt) else f"{dt:.0f} s"
        lines.append(f"- {what} ({took}): `{portable(cmd)}`")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"[reproduce] report written to {path}", flush=True)
    return path
