"""A run records itself (issue 15): the resolved config printed as a tree (rank 0 only) and logged
as hyperparameters to every logger (CSV / TensorBoard ``hparams.yaml``), key material never."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import OmegaConf

from speechret.utils.run_records import flatten, hyperparameters, log_hyperparameters, print_config_tree

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tiny_corpus, tmp_path_factory, train_composed):
    out = tmp_path_factory.mktemp("records")
    overrides = ["experiment=lstm_hash", "data=manifest", f"data.root={tiny_corpus / 'manifest.csv'}",
                 "data.batch_size=4", "data.val_fraction=0.25", "data.test_fraction=0.25", "data.num_workers=0",
                 "model.net.lstm_units=16", "model.hash_bits=48", "trainer.max_epochs=1", "test=false",
                 "logger=[csv,tensorboard]", "callbacks.rich_progress_bar=null", f"paths.output_dir={out}"]
    return out, train_composed(overrides)


@pytest.mark.parametrize("logger_dir", ["csv", "tensorboard"])
def test_hparams_yaml_holds_the_resolved_config(run, logger_dir):
    out, _ = run
    (path,) = (out / logger_dir).rglob("hparams.yaml")
    hp = yaml.safe_load(path.read_text())
    assert hp, f"{path} is empty"
    assert hp["model.hash_bits"] == 48
    assert hp["model.net.lstm_units"] == 16 and hp["model.num_classes"] > 0  # filled in from the data
    assert hp["trainer.max_epochs"] == 1 and hp["seed"] == 12345
    assert hp["model/params/total"] > 0


def test_config_tree_printed_once_on_rank_zero_only(capsys, monkeypatch):
    cfg = OmegaConf.create({"model": {"hash_bits": 64}, "trainer": {"max_epochs": 3}, "seed": 1})
    print_config_tree(cfg)
    out = capsys.readouterr().out
    assert "CONFIG" in out and "hash_bits: 64" in out and "max_epochs: 3" in out
    assert out.index("model") < out.index("trainer")
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    print_config_tree(cfg)
    assert capsys.readouterr().out == ""


SECRET_CFG = {
    "model": {"hash_bits": 64},
    "cipher": {"_target_": "speechret.crypto.aead.AESGCMCipher",
               "key_material": {"key_hex": "00" * 32, "key_file": "/keys/k.bin", "passphrase": "hunter2"}},
    "library": {"password": "swordfish", "root": "/lib"},
}


def test_key_material_is_never_logged_or_printed(capsys):
    hp = hyperparameters(OmegaConf.create(SECRET_CFG))
    assert hp["model.hash_bits"] == 64 and hp["cipher._target_"].endswith("AESGCMCipher")
    assert hp["library.root"] == "/lib"
    assert not any("key_material" in k or "password" in k for k in hp)
    text = repr(hp)
    assert "00" * 32 not in text and "hunter2" not in text and "swordfish" not in text

    class Recorder:
        def __init__(self):
            self.got = None

        def log_hyperparams(self, params):
            self.got = params

    loggers = [Recorder(), Recorder()]
    log_hyperparameters(loggers, OmegaConf.create(SECRET_CFG))
    assert all(r.got == hp for r in loggers)
    print_config_tree(OmegaConf.create(SECRET_CFG))
    printed = capsys.readouterr().out
    assert "hunter2" not in printed and "swordfish" not in printed and "key_material" not in printed


def test_flatten_uses_dotted_keys():
    assert flatten({"a": {"b": 1, "c": [1, 2], "d": {}}, "e": [{"f": 2}]}) == {
        "a.b": 1, "a.c": [1, 2], "a.d": None, "e.0.f": 2}


def test_summary_lists_checkpoint_sizes(run):
    out, summary = run
    assert set(summary["checkpoint_mb"]) == {Path(summary["best_checkpoint"]).name, "last.ckpt"}
    assert all(mb > 0 for mb in summary["checkpoint_mb"].values())
    assert summary["global_rank"] == 0 and summary["world_size"] == 1
