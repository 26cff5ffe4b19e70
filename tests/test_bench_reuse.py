"""``--reuse`` of the benchmark runners (bench/reproduce_common.py): a finished run is reused only
when its command, the config it composes and (for an evaluation) its checkpoint's bytes are the
same; anything else trains or evaluates again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from reproduce_common import Runner, run_digest  # noqa: E402

TRAIN = ["experiment=speechret_hash", "data=dspspeech20", "data.root=/nowhere"]


def _fake_runs(monkeypatch, result: str, content: dict) -> list:
    """Stands in for the runner's subprocess: each call writes ``result`` (``content`` as JSON) into
    its ``hydra.run.dir``, as the script would; returns the list the calls are recorded in."""
    calls: list = []

    def fake_call(cmd, cwd, stdout, stderr):
        calls.append(cmd)
        run_dir = Path(next(c for c in cmd if c.startswith("hydra.run.dir=")).split("=", 1)[1])
        (run_dir / result).write_text(json.dumps(content))
        return 0

    monkeypatch.setattr(subprocess, "call", fake_call)
    return calls


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
    calls = _fake_runs(monkeypatch, "metrics.json", {"map": 0.5})  # what evaluate.py writes
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


def test_report_only_never_trains_and_reuses_a_finished_run_whose_config_changed(tmp_path, monkeypatch, capsys):
    calls = _fake_runs(monkeypatch, "summary.json", {"best_checkpoint": "/x/best.ckpt", "metrics": {}})  # train.py
    Runner(tmp_path / "out").train("m", ["experiment=cnn"])
    assert len(calls) == 1
    changed = ["experiment=cnn", "trainer.max_epochs=3"]
    assert Runner(tmp_path / "out", report_only=True).train("m", changed)["best_checkpoint"] == "/x/best.ckpt"
    assert len(calls) == 1 and "report-only: reusing train m" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="--report-only trains nothing"):
        Runner(tmp_path / "out", report_only=True).train("never", ["experiment=cnn"])
    Runner(tmp_path / "out", reuse=True).train("m", changed)  # --reuse alone: the changed run is trained again
    assert len(calls) == 2


def test_report_only_reuses_a_finished_evaluation_whose_config_changed_and_runs_a_missing_one(
        tmp_path, monkeypatch, capsys):
    calls = _fake_runs(monkeypatch, "metrics.json", {"map": 0.5})  # what evaluate.py writes
    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes(b"one")
    args = [f"ckpt_path={ckpt}", "protocol=cross_speaker"]
    Runner(tmp_path / "out").evaluate("x", args)
    changed = [*args, "evaluate.max_threshold=0.4"]
    assert Runner(tmp_path / "out", report_only=True).evaluate("x", changed)["map"] == 0.5
    assert len(calls) == 1 and "report-only: reusing evaluate x" in capsys.readouterr().out
    Runner(tmp_path / "out", report_only=True).evaluate("y", args)  # never evaluated: it runs
    assert len(calls) == 2
    Runner(tmp_path / "out", reuse=True).evaluate("x", changed)  # --reuse alone: evaluated again
    assert len(calls) == 3


def test_reproduce_paper_c_recipe_reaches_the_ctc_models_only_and_the_report_says_so(tmp_path, monkeypatch):
    """``bench/reproduce_paper_c.py --recipe``: the CTC trainings get ``recipe=...``, the fixed-length
    hash of Table 5 does not, and the report's intro and training-CPO line name the recipe instead
    of claiming clean-speech training."""
    import reproduce_paper_c as rpc

    trained, written = {}, {}

    class FakeRunner:
        def __init__(self, out, *a, **k):
            self.out = Path(out)

        def train(self, name, overrides):
            trained[name] = list(overrides)
            return {"best_checkpoint": f"/x/{name}.ckpt", "metrics": {"val/per": 0.1, "test/per": 0.2}, "epochs": 3}

        def evaluate(self, name, overrides):
            return {}

    def fake_write_report(path, title, intro, sections, runner, profile, started, training_cpos):
        written.update(intro=intro, cpos=training_cpos, sections=dict(sections))

    monkeypatch.setattr(rpc, "Runner", FakeRunner)
    monkeypatch.setattr(rpc, "write_report", fake_write_report)
    for recipe in ("speechret_ctc", "none"):
        trained.clear()
        monkeypatch.setattr(sys, "argv", ["reproduce_paper_c.py", "--recipe", recipe, "--out", str(tmp_path),
                                          "--models", "cnn3d_bilstm_ctc_cpu", "biconvlstm_ctc_cpu"])
        rpc.main()
        ctc = [trained["cnn3d_bilstm_ctc_cpu"], trained["biconvlstm_ctc_cpu"]]
        if recipe == "none":
            assert all(not any(o.startswith("recipe=") for o in ov) for ov in ctc)
            assert "trained on clean speech" in written["intro"] and written["cpos"].startswith("none (clean speech")
        else:
            assert all("recipe=speechret_ctc" in ov for ov in ctc)
            assert "trained on clean speech" not in written["intro"]
            assert "recipe=speechret_ctc" in written["intro"] and "recipe=speechret_ctc" in written["cpos"]
            assert "Training (speaker-disjoint, `recipe=speechret_ctc`)" in written["sections"]
        assert not any(o.startswith("recipe=") for o in trained["lstm_hash_words"])


def test_at_best_reads_the_metric_at_the_best_checkpoints_epoch_not_the_last(tmp_path):
    from reproduce_paper_c import at_best

    log = tmp_path / "csv" / "version_0"
    log.mkdir(parents=True)
    rows = ["epoch,step,train/loss,val/per", "0,10,1.0,", "0,10,,0.50", "1,20,,0.20", "2,30,,0.30"]
    (log / "metrics.csv").write_text("\n".join(rows) + "\n")
    summary = {"metrics": {"val/per": 0.30}, "best_checkpoint": str(tmp_path / "checkpoints" / "epoch_001.ckpt")}
    assert at_best(tmp_path, summary) == 0.20
    assert at_best(tmp_path, {**summary, "best_checkpoint": "last.ckpt"}) == 0.30  # no epoch: the summary's
    assert at_best(tmp_path / "nowhere", summary) == 0.30


def test_refit_trains_on_every_non_test_speaker_and_keeps_the_validation_chosen_threshold(tmp_path, monkeypatch):
    """bench/cross_speaker.py --refit: no validation split, the last checkpoint, and the standard run's
    threshold given to evaluate.py (nothing chosen on the test speakers); a run without a best
    checkpoint is refused where a best one is required."""
    import cross_speaker

    calls = []

    def fake_call(cmd, cwd, stdout, stderr):
        calls.append(cmd)
        run_dir = Path(next(c for c in cmd if c.startswith("hydra.run.dir=")).split("=", 1)[1])
        if cmd[1] == "train.py":
            (run_dir / "summary.json").write_text(json.dumps(
                {"best_checkpoint": "", "last_checkpoint": str(run_dir / "last.ckpt"), "wall_time_s": 60.0,
                 "global_step": 2100, "metrics": {}}))
            (run_dir / "last.ckpt").write_bytes(b"weights")
        else:
            views = next((c for c in cmd if c.startswith("evaluate.views=")), None)
            (run_dir / "metrics.json").write_text(json.dumps(
                {"map": 0.9 if views is None else 0.8, "precision": 0.7, "recall": 0.6, "f1": 0.65,
                 "threshold": float(next(c for c in cmd if c.startswith("evaluate.threshold=")).split("=")[1]),
                 "views": "speed5" if views is None else "one view per clip"}))
        return 0

    monkeypatch.setattr(subprocess, "call", fake_call)
    runner = Runner(tmp_path / "out")
    r = cross_speaker.refit(runner, "fold0_10w_128b_refit", [*TRAIN, "data.test_speakers=[a,b]"], 0.23, [])
    train_cmd, eval_cmd = calls[0], calls[1]
    assert "data.val_speakers=[]" in train_cmd and "data.test_speakers=[a,b]" in train_cmd
    assert f"ckpt_path={tmp_path / 'out' / 'train' / 'fold0_10w_128b_refit' / 'last.ckpt'}" in eval_cmd
    assert "evaluate.threshold=0.23" in eval_cmd
    assert r["map"] == 0.9 and r["map_one_view"] == 0.8 and r["threshold"] == 0.23 and r["steps"] == 2100
    with pytest.raises(RuntimeError, match="no best checkpoint"):
        runner.train("fold0_10w_128b_refit", [*TRAIN, "data.test_speakers=[a,b]", "data.val_speakers=[]"])
    results = {(f, "10 Mandarin words", 128): {"map": m, "refit": {**r, "map": m + 0.02}}
               for f, m in ((0, 0.90), (1, 0.94))}
    text = cross_speaker.refit_section(results)
    assert "| mean ± sd (2 folds) | 10 Mandarin words | 0.9200 ± 0.0283 |  | 0.9400 ± 0.0283 |" in text
    assert cross_speaker.refit_section({(0, "20 words", 128): {"map": 0.9}}) == ""
