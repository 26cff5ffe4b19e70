"""The apps' configs, entry points and paths (issue 15).

* every command composes from the config directory inside the package (``speechret/conf``, the
  checkout's ``conf/``);
* ``paths.root_dir`` follows the documented rule ($SPEECHRET_ROOT > $PROJECT_ROOT > checkout > cwd),
  not the folder a command is started in;
* the demo's training overrides reach the config it trains with (``data=`` was lost before);
* ``ckpt=`` is ``ckpt_path=`` in every command, and the old name is a clear error;
* ``--help`` lists only the config groups the command uses;
* ``search`` writes no run directory unless ``save_run=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from speechret import cli
from speechret.config import CONF_DIR, project_root
from speechret.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _compose(name: str, overrides: list[str] | None = None, **kw):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(name, overrides=overrides or [], **kw)


@pytest.fixture
def no_root_env(monkeypatch):
    for var in ("SPEECHRET_ROOT", "PROJECT_ROOT", "SPEECHRET_DATA_DIR", "SPEECHRET_SHARED_DATA"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def run_cli(monkeypatch):
    """``speechret <args>`` in this process (Hydra's global state and sys.argv restored after)."""

    def run(*args: str) -> int | None:
        monkeypatch.setattr(sys, "argv", ["speechret", *args])
        try:
            return cli.main(list(args))
        except SystemExit as exc:
            return exc.code
        finally:
            GlobalHydra.instance().clear()

    return run


def test_configs_live_inside_the_package_and_are_the_checkouts_conf():
    assert CONF_DIR == Path(cli.__file__).resolve().parent / "conf"
    assert (CONF_DIR / "demo.yaml").is_file() and (CONF_DIR / "features").is_dir()
    # one set of files: speechret/conf is the top-level conf/ (a symbolic link in the checkout)
    assert CONF_DIR.resolve() == (REPO / "conf").resolve()
    assert sorted(p.name for p in (REPO / "conf").glob("*.yaml")) == sorted(p.name for p in CONF_DIR.glob("*.yaml"))


def test_paths_hang_off_the_project_root_not_the_cwd(tmp_path, monkeypatch, no_root_env):
    monkeypatch.chdir(tmp_path)
    cfg = _compose("train")
    assert project_root() == REPO  # a checkout: the folder holding pyproject.toml and conf/
    assert Path(cfg.paths.root_dir) == REPO
    assert Path(cfg.data.root) == REPO / "data" / "synth_cmn"
    assert Path(cfg.paths.log_dir) == REPO / "logs"
    assert Path(_compose("index").library) == REPO / "libraries" / "default"
    assert Path(_compose("demo", ["data=dspspeech20"]).data.root) == REPO / ".." / "shared" / "data" / "dspspeech20"

    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path / "lht"))  # lightning-hydra-template's variable
    assert Path(_compose("train").data.root) == tmp_path / "lht" / "data" / "synth_cmn"
    monkeypatch.setenv("SPEECHRET_ROOT", str(tmp_path / "sr"))  # takes precedence
    cfg = _compose("train")
    assert Path(cfg.paths.root_dir) == tmp_path / "sr" and Path(cfg.paths.log_dir) == tmp_path / "sr" / "logs"
    monkeypatch.setenv("SPEECHRET_DATA_DIR", str(tmp_path / "corpora"))
    assert Path(_compose("train").data.root) == tmp_path / "corpora" / "synth_cmn"


def test_demo_trains_with_the_command_lines_training_overrides(tmp_path, no_root_env):
    from speechret.apps.demo import train_config

    # defaults: conf/train.yaml + experiment=speechret_hash, 6 epochs; the demo's own keys under demo.*
    cfg = _compose("demo")
    tcfg = train_config(cfg, tmp_path / "train")
    assert cfg.demo.index.k == 3 and "demo" not in tcfg
    assert tcfg.experiment_name == "speechret_hash" and tcfg.trainer.max_epochs == 6 and tcfg.data.corpus == "synthetic"
    assert tcfg.paths.output_dir == str(tmp_path / "train")

    root = str(tmp_path / "dsp")
    cfg = _compose("demo", ["data=dspspeech20", f"data.root={root}", "trainer.max_epochs=1", "experiment=cnn_hash",
                            "model.hash_bits=64", "demo.index.k=5"])
    tcfg = train_config(cfg, tmp_path / "train")
    # the corpus the demo shows (stages 1-3) and the one it trains on (stage 4) are the same
    assert cfg.data.corpus == tcfg.data.corpus == "dspspeech20" and tcfg.data.root == root
    assert tcfg.trainer.max_epochs == 1 and tcfg.experiment_name == "cnn_hash" and tcfg.model.hash_bits == 64
    assert cfg.demo.index.k == 5 and "demo" not in tcfg  # demo-only keys stay the demo's


@pytest.mark.slow
def test_demo_cfg_job_shows_the_data_override(tmp_path):
    """The issue's command, ``python -m speechret.apps.demo data=dspspeech20 data.root=...``, as
    ``--cfg job``: the config the demo trains with holds the dspspeech20 corpus."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run([sys.executable, "-m", "speechret.apps.demo", "data=dspspeech20", f"data.root={tmp_path}",
                          "trainer.max_epochs=1", "--cfg", "job"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "corpus: dspspeech20" in res.stdout and f"root: {tmp_path}" in res.stdout
    assert "max_epochs: 1" in res.stdout and "task_name: demo" in res.stdout


@pytest.mark.parametrize("name, extra", [("index", []), ("search", ["queries=q.wav"]), ("evaluate", [])])
def test_old_ckpt_key_is_a_clear_error(name, extra, tmp_path):
    from speechret.apps.index import run_index
    from speechret.apps.search import run_search
    from speechret.evaluate.runner import run_evaluation

    run = {"index": run_index, "search": run_search, "evaluate": lambda c: run_evaluation(c, tmp_path)}[name]
    cfg = _compose(name, ["ckpt=best.ckpt", *extra])
    with pytest.raises(ConfigError, match=r"ckpt= was renamed ckpt_path=.*ckpt_path=best.ckpt"):
        run(cfg)
    assert _compose(name, ["ckpt_path=best.ckpt", *extra]).ckpt_path == "best.ckpt"
    assert _compose("train", ["ckpt_path=best.ckpt"]).ckpt_path == "best.ckpt"  # the same name as train's


def test_cli_help_lists_the_subcommands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("train", "index", "search", "evaluate", "demo"):
        assert f"\n  {name} " in out
    assert cli.main(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err


def test_cli_refuses_raw_key_material_before_composing(run_cli, capsys):
    assert run_cli("index", "cipher.key_material.key_hex=00ff") == 2
    err = capsys.readouterr().err
    assert "key_hex" in err and "00ff" not in err


@pytest.mark.parametrize("command, used, unused", [
    ("train", ["model:", "trainer:", "data:", "experiment:", "logger:"], ["cipher:", "index:", "protocol:", "baseline"]),
    ("search", ["cipher:", "paths:"], ["model:", "trainer:", "protocol:", "experiment:", "data:"]),
    ("evaluate", ["protocol:", "baseline@evaluate.baseline_systems.dtw:", "data:"], ["cipher:", "trainer:", "model:"]),
])
def test_help_lists_only_the_groups_the_command_uses(command, used, unused, run_cli, capsys):
    assert run_cli(command, "--help") in (0, None)
    out = capsys.readouterr().out
    groups = out.split("== Configuration groups")[1].split("== Config ==")[0]
    lines = [ln.split(":")[0] + ":" for ln in groups.splitlines() if ": " in ln]
    for g in used:
        assert any(ln.startswith(g) for ln in lines), (g, lines)
    for g in unused:
        assert not any(ln.startswith(g) for ln in lines), (g, lines)
    assert f"speechret {command}" in out


def test_search_writes_no_run_directory_unless_asked(tmp_path, monkeypatch, run_cli, capsys):
    monkeypatch.setenv("SPEECHRET_ROOT", str(tmp_path / "root"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = [f"library={tmp_path / 'no_library'}", "queries=q.wav", "ckpt_path=best.ckpt"]
    code = run_cli("search", *args)
    assert code not in (0, None) and "error:" in str(code)  # no library there: a one-line error
    assert list(work.iterdir()) == [] and not (tmp_path / "root").exists()  # nothing written anywhere

    run_cli("search", *args, "save_run=true")
    runs = list((tmp_path / "root" / "logs" / "search" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / ".hydra" / "config.yaml").is_file()
    assert list(work.iterdir()) == []


def test_gitignore_ignores_nothing_tracked():
    """Every pattern of .gitignore is for generated files: no tracked file matches one."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    res = subprocess.run(["git", "ls-files", "-ci", "--exclude-standard"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout == "", res.stdout


def test_ema_callback_is_added_by_the_documented_override(tmp_path):
    """conf/callbacks/ema.yaml's own instruction, ``callbacks=[default,ema]``: every default callback
    stays and Lightning's EMAWeightAveraging is added (``+callbacks=ema`` is refused by Hydra)."""
    from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint

    from speechret.apps.train import _instantiate_group

    cfg = _compose("train", ["callbacks=[default,ema]", "callbacks.ema.decay=0.99", f"paths.output_dir={tmp_path}"])
    cbs = _instantiate_group(cfg.callbacks)
    ema = [c for c in cbs if isinstance(c, EMAWeightAveraging)]
    assert len(ema) == 1 and sum(isinstance(c, ModelCheckpoint) for c in cbs) == 2
    assert set(_compose("train").callbacks) < set(cfg.callbacks)
