"""``--reuse`` of the benchmark runners (bench/reproduce_common.py): a finished run is reused only
when its command, the config it composes and (for an evaluation) its checkpoint's bytes are the
same; anything else trains or evaluates again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from reproduce_common import Runner, run_digest  # noqa: E402

TRAIN = ["experiment=speechret_hash", "data=dspspeech20", "data.root=/nowhere"]


def test_the_digest_follows_the_composed_config_not_the_run_folder():
    a = run_digest("train.py", [*TRAIN, "hydra.run.dir=/tmp/a"])
    assert a == run_digest("train.py", [*TRAIN, "hydra.run.dir=/tmp/b"])
    assert a != run_digest("train.py", [*TRAIN, "trainer.max_steps=1000"])
    assert a != run_digest("train.py", [*TRAIN, "augment=default"])  # a different config file, same command length


def test_the_digest_follows_the_checkpoint_bytes(tmp_path):
    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes(b"first training")
    a = run_digest("evaluate.py", [f"ckpt_path={ckpt}", "protocol=cross_speaker"])
    ckpt.write_bytes(b"second training")
    assert a != run_digest("evaluate.py", [f"ckpt_path={ckpt}", "protocol=cross_speaker"])


def test_reuse_skips_only_a_run_with_the_same_command_config_and_checkpoint(tmp_path, monkeypatch):
    calls = []

    def fake_call(cmd, cwd, stdout, stderr):  # writes what evaluate.py would
        calls.append(cmd)
        run_dir = Path(next(c for c in cmd if c.startswith("hydra.run.dir=")).split("=", 1)[1])
        (run_dir / "metrics.json").write_text(json.dumps({"map": 0.5}))
        return 0

    monkeypatch.setattr(subprocess, "call", fake_call)
    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes(b"one")
    args = [f"ckpt_path={ckpt}", "protocol=cross_speaker"]
    Runner(tmp_path / "out").evaluate("x", args)
    Runner(tmp_path / "out", reuse=True).evaluate("x", args)
    assert len(calls) == 1  # same command, config and checkpoint: reused
    Runner(tmp_path / "out").evaluate("x", args)
    assert len(calls) == 2  # without --reuse it always runs
    ckpt.write_bytes(b"retrained")
    Runner(tmp_path / "out", reuse=True).evaluate("x", args)
    assert len(calls) == 3  # the checkpoint changed under the same name
    Runner(tmp_path / "out", reuse=True).evaluate("x", [*args, "evaluate.views=none"])
    assert len(calls) == 4  # the command changed
