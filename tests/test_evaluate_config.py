"""How ``evaluate.py`` builds what it runs from the config, without training: protocols and studies
from ``conf/protocol/<name>.yaml`` (told apart by type), baselines by name from
``conf/baseline/<name>.yaml`` (``evaluate.baseline_systems.<name>``), and a
:class:`~speechret.errors.ConfigError` naming the key for a config that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from speechret.errors import ConfigError
from speechret.evaluate.base import Study, kind_of
from speechret.evaluate.baselines import ASRSystem, DTWSystem, instantiate_baselines
from speechret.evaluate.protocols import CPORetrieval, Protocol
from speechret.evaluate.runner import Context, build_protocol, evaluate_checkpoint, run_evaluation

REPO = Path(__file__).resolve().parents[1]
PROTOCOLS = sorted(p.stem for p in (REPO / "conf" / "protocol").glob("*.yaml"))
STUDIES = {"hash_length", "encryption", "retrieval_time"}


def _cfg(overrides: list[str] = ()):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose("evaluate", overrides=list(overrides))


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_protocol_config_is_a_protocol_or_a_study(name):
    obj = build_protocol(_cfg([f"protocol={name}"]))
    assert obj.name == name
    assert kind_of(obj) == ("study" if name in STUDIES else "protocol")
    assert isinstance(obj, Study if name in STUDIES else Protocol)


def test_study_is_a_type_not_a_name():
    class Duck:  # a run method alone does not make a study: the type does
        name = "duck"

        def run(self, ctx):
            return None

    class Declared(Study):
        name = "declared"

        def run(self, ctx):
            return None

    assert not isinstance(Duck(), Study) and kind_of(Declared()) == "study"
    with pytest.raises(ConfigError, match="^protocol: "):
        kind_of(Duck())
    assert not isinstance(CPORetrieval(), Study) and kind_of(CPORetrieval()) == "protocol"
    with pytest.raises(ConfigError, match="^protocol: .*neither a retrieval protocol"):
        kind_of(object())
    with pytest.raises(TypeError):
        Study()  # abstract


def test_bad_protocol_configs_name_the_protocol_key():
    with pytest.raises(ConfigError, match="(?s)^protocol: .*at least one CPO"):
        build_protocol(_cfg(["protocol.cpos=[]"]))
    with pytest.raises(ConfigError, match="^protocol: .*neither a retrieval protocol"):
        build_protocol(_cfg(["protocol._target_=builtins.dict"]))
    with pytest.raises(ConfigError, match="^protocol: "):
        build_protocol(_cfg(["protocol._target_=speechret.evaluate.protocols.NoSuchProtocol"]))


def test_baselines_by_name_come_from_their_config_files():
    cfg = _cfg(["evaluate.baselines=[dtw]", "evaluate.baseline_systems.dtw.band=0.1"])
    [dtw] = instantiate_baselines(cfg.evaluate.baselines, cfg.evaluate.baseline_systems)
    assert isinstance(dtw, DTWSystem) and dtw.name == "mfcc_dtw" and dtw.band == 0.1 and dtw.metric == "cosine"
    assert instantiate_baselines([], cfg.evaluate.baseline_systems) == []
    # an inline _target_ node works too
    [inline] = instantiate_baselines([{"_target_": "speechret.evaluate.baselines.DTWSystem", "name": "dtw2",
                                       "metric": "euclidean"}], cfg.evaluate.baseline_systems)
    assert isinstance(inline, DTWSystem) and inline.name == "dtw2" and inline.metric == "euclidean"


def test_asr_baseline_takes_the_main_checkpoints_ctc_model_or_says_which_key_to_set():
    from speechret.models.hash_modules import CTCHashModule

    cfg = _cfg(["evaluate.baselines=[asr]"])
    assert cfg.evaluate.baseline_systems.asr.ckpt is None  # ${evaluate.asr_ckpt}

    class Main:  # the evaluated checkpoint's system, its hasher a paper-C CTC model
        name = "deep_hash"

        class hasher:
            module = CTCHashModule.__new__(CTCHashModule)

    [asr] = instantiate_baselines(cfg.evaluate.baselines, cfg.evaluate.baseline_systems, Main())
    assert isinstance(asr, ASRSystem) and asr.name == "asr_edit" and asr.hasher is Main.hasher

    class NotCTC:
        name = "deep_hash"
        hasher = object()

    with pytest.raises(ConfigError, match="evaluate.asr_ckpt"):
        instantiate_baselines(cfg.evaluate.baselines, cfg.evaluate.baseline_systems, NotCTC())


def test_bad_baseline_configs_name_the_key():
    systems = _cfg().evaluate.baseline_systems
    with pytest.raises(ConfigError, match="^evaluate.baselines: unknown baseline 'nope'.*'asr', 'dtw'"):
        instantiate_baselines(["nope"], systems)
    with pytest.raises(ConfigError, match="^evaluate.baselines must be a list"):
        instantiate_baselines("dtw", systems)
    with pytest.raises(ConfigError, match="^evaluate.baseline_systems.dtw: metric must be one of"):
        instantiate_baselines(["dtw"], _cfg(["evaluate.baseline_systems.dtw.metric=manhattan"]).evaluate.baseline_systems)
    with pytest.raises(ConfigError, match=r"^evaluate.baselines\[0\]: a baseline is a Hydra node with a _target_"):
        instantiate_baselines([{"name": "x"}], systems)
    with pytest.raises(ConfigError, match=r"more than one system named \['mfcc_dtw'\]"):
        instantiate_baselines(["dtw", "dtw"], systems)


def test_bad_evaluate_values_raise_config_errors_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="^evaluate.set must be one of"):
        Context(_cfg(["evaluate.set=everything"]), tmp_path).set_name()
    with pytest.raises(ConfigError, match="^evaluate.threshold_split names splits"):
        Context(_cfg(["evaluate.threshold_split=test"]), tmp_path).threshold_trial(None, CPORetrieval())
    with pytest.raises(ConfigError, match="^evaluate.threshold_fallback names splits"):
        Context(_cfg(["evaluate.threshold_fallback=[val,bogus]"]), tmp_path).threshold_trial(None, CPORetrieval())
    with pytest.raises(ConfigError, match="^evaluate.thresholds.mfcc_dtw must be a number"):
        Context(_cfg(["evaluate.thresholds.mfcc_dtw=high"]), tmp_path).thresholds(["deep_hash", "mfcc_dtw"])
    with pytest.raises(ConfigError, match="^evaluate.labels must be a list of integers"):
        Context(_cfg(["evaluate.labels=[a,b]"]), tmp_path).eval_data(None, CPORetrieval())
    with pytest.raises(ConfigError, match="^evaluate.threshold_criterion must be one of"):
        evaluate_checkpoint(Context(_cfg(["evaluate.threshold_criterion=auc"]), tmp_path), CPORetrieval(), object())
    with pytest.raises(ConfigError, match=r"^evaluate.min_precision must lie in \(0, 1\], got 1.5"):
        evaluate_checkpoint(Context(_cfg(["evaluate.threshold_criterion=precision", "evaluate.min_precision=1.5"]),
                                    tmp_path), CPORetrieval(), object())
    with pytest.raises(ConfigError, match="^evaluate.min_precision must be a number or null"):
        evaluate_checkpoint(Context(_cfg(["evaluate.min_precision=high"]), tmp_path), CPORetrieval(), object())
    with pytest.raises(ConfigError, match="^evaluate.direction: "):
        evaluate_checkpoint(Context(_cfg(["evaluate.direction=sideways"]), tmp_path), CPORetrieval(), object())
    # a retrieval protocol without a checkpoint
    with pytest.raises(ConfigError, match="^ckpt_path: protocol cpo_retrieval evaluates one checkpoint"):
        run_evaluation(_cfg(), out_dir=tmp_path / "no_ckpt")
