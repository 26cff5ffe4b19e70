"""evaluate.py end to end: every protocol on a tiny synthetic corpus leaves metrics.json (flat
keys), PNG plots and report.md; thresholds come from the training data's validation split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from speechret.evaluate.runner import run_evaluation
from speechret.training import train

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose(name, overrides=overrides)


def _train(corpus: Path, out: Path, extra: list[str]) -> str:
    cfg = compose_cfg("train", ["experiment=cnn", "debug=limit", "trainer.max_epochs=1", "logger=csv", "test=false",
                                "data=manifest", f"data.root={corpus / 'manifest.csv'}", "data.batch_size=4",
                                "data.val_fraction=0.25", "data.test_fraction=0.25", f"paths.output_dir={out}"] + extra)
    return train(cfg)["best_checkpoint"]


@pytest.fixture(scope="module")
def ckpts(tiny_corpus, tmp_path_factory) -> dict[int, str]:
    """Two paper-A CNN checkpoints with 64- and 128-bit codes (one epoch, a few batches)."""
    return {bits: _train(tiny_corpus, tmp_path_factory.mktemp(f"train{bits}"), [f"model.hash_bits={bits}"])
            for bits in (64, 128)}


def evaluate(overrides: list[str], out: Path) -> dict:
    cfg = compose_cfg("evaluate", overrides)
    run_evaluation(cfg, out_dir=out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(metrics))  # strict JSON: NaN written as null
    report = (out / "report.md").read_text()
    assert report.startswith("# speechret evaluation")
    pngs = sorted(out.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == PNG for p in pngs)
    for p in pngs:
        assert f"({p.name})" in report
    return metrics


def _data(tiny_corpus) -> list[str]:
    return ["data=manifest", f"data.root={tiny_corpus / 'manifest.csv'}"]


def test_cpo_retrieval_end_to_end_with_threshold_from_validation(ckpts, tiny_corpus, tmp_path):
    m = evaluate([f"ckpt={ckpts[64]}", "protocol=cpo_retrieval", "protocol.max_queries=8",
                  "protocol.cpos=[mp3_128k,requant_8bit,gain_-3dB,gain_+3dB,gaussian_30dB,resample_8k]"]
                 + _data(tiny_corpus), tmp_path)
    for k in ("map", "precision", "recall", "f1", "threshold", "n_queries", "n_database", "identity_recall",
              "far@0.02", "far@0.16", "inter_ber_mean", "ber_mean.mp3_128k", "ber_mean.gain_+3dB", "map.resample_8k"):
        assert k in m, k
    assert m["n_queries"] == 6 * 8 and m["n_database"] == 32
    assert "(val)" in m["threshold_source"] and "max F1" in m["threshold_source"]
    assert 0.0 <= m["identity_recall"] <= 1.0 and 0.0 <= m["map"] <= 1.0
    # the same threshold whatever is evaluated: it never looks at the evaluation set
    m2 = evaluate([f"ckpt={ckpts[64]}", "protocol=cpo_retrieval", "protocol.max_queries=4",
                   "protocol.cpos=[mp3_128k,requant_8bit,gain_-3dB,gain_+3dB,gaussian_30dB,resample_8k]",
                   "evaluate.labels=[0,1]"] + _data(tiny_corpus), tmp_path / "labels")
    assert m2["threshold"] == m["threshold"] and m2["n_database"] == 16
    # a given threshold is used as is
    m3 = evaluate([f"ckpt={ckpts[64]}", "protocol=cpo_retrieval", "protocol.max_queries=4", "protocol.cpos=[gain_-3dB]",
                   "evaluate.threshold=0.2"] + _data(tiny_corpus), tmp_path / "given")
    assert m3["threshold"] == 0.2 and m3["threshold_source"].startswith("given")


def test_cross_speaker_reports_same_speaker_separately(ckpts, tiny_corpus, tmp_path):
    # the validation split holds one speaker: no cross-speaker pair there -> a clear error ...
    with pytest.raises(ValueError, match="no relevant pair"):
        evaluate([f"ckpt={ckpts[64]}", "protocol=cross_speaker"] + _data(tiny_corpus), tmp_path / "fail")
    # ... and train+val of the training data is the documented way out
    m = evaluate([f"ckpt={ckpts[64]}", "protocol=cross_speaker", "evaluate.threshold_split=[val,train]",
                  "evaluate.baselines=[dtw]"] + _data(tiny_corpus), tmp_path)
    for k in ("map", "same_speaker.map", "any_speaker.map", "mfcc_dtw.map", "mfcc_dtw.threshold", "far@0.10"):
        assert k in m, k
    assert m["n_queries"] == 32 and "val" in m["threshold_source"] and "train" in m["threshold_source"]


def test_keyword_protocol_with_dtw_baseline(ckpts, tiny_corpus, tmp_path):
    m = evaluate([f"ckpt={ckpts[64]}", "protocol=keyword", "protocol.n_utterances=12", "evaluate.baselines=[dtw]",
                  "evaluate.threshold=0.3", "evaluate.thresholds.mfcc_dtw=0.25"] + _data(tiny_corpus), tmp_path)
    for k in ("keyword_recall", "keyword_precision", "mfcc_dtw.keyword_recall", "mfcc_dtw.keyword_precision", "map"):
        assert k in m, k
    assert m["n_database"] == 12 and m["mfcc_dtw.threshold"] == 0.25


def test_noise_protocol_keys(ckpts, tiny_corpus, tmp_path):
    m = evaluate([f"ckpt={ckpts[64]}", "protocol=noise", "protocol.snrs=[0,25]", "protocol.max_queries=4",
                  "evaluate.threshold=0.3"] + _data(tiny_corpus), tmp_path)
    for noise in ("cafe", "white", "car"):
        for snr in (0, 25):
            for key in ("ap", "recall", "map"):
                assert f"{key}.{noise}.{snr}" in m
    assert m["n_queries"] == 4 * 7
    assert "Noise robustness" in (tmp_path / "report.md").read_text()


def test_hash_length_table_over_checkpoints(ckpts, tiny_corpus, tmp_path):
    m = evaluate([f"ckpt=[{ckpts[128]},{ckpts[64]}]", "protocol=hash_length", "protocol.inner.max_queries=4"]
                 + _data(tiny_corpus), tmp_path)
    assert m["hash_lengths"] == [64, 128]
    for bits in (64, 128):
        assert f"map.{bits}" in m and f"threshold.{bits}" in m
    assert m["map"] == m["map.128"]  # unsuffixed = the longest code
    assert (tmp_path / "hash_length.png").is_file()


def test_encryption_study_decrypts_bit_exact(tiny_corpus, tmp_path):
    m = evaluate(["protocol=encryption", "protocol.n_items=2"] + _data(tiny_corpus), tmp_path)
    for c in ("hyperchaotic", "rossler", "aes_gcm"):
        assert m[f"{c}.decrypt_bit_exact"] == 1.0
        assert m[f"{c}.corr_encrypted"] < 0.1 < m[f"{c}.corr_original"]
        assert (tmp_path / f"waveform_spectrogram_{c}.png").is_file()
    assert m["aes_gcm.key_space_log2"] == 256


def test_retrieval_time_study(ckpts, tiny_corpus, tmp_path):
    m = evaluate([f"ckpt={ckpts[64]}", "protocol=retrieval_time", "protocol.n_items=1000", "protocol.hash_lengths=[64]",
                  "protocol.n_queries=10", "protocol.repeats=1", "protocol.e2e_queries=3"] + _data(tiny_corpus), tmp_path)
    assert m["time.64.two_stage_ms"] > 0 and m["time.64.traversal_ms"] > 0 and m["e2e.e2e_mean_s"] > 0
    assert np.isclose(m["time.64.source_recall"], 1.0)


def test_single_protocol_refuses_several_checkpoints(ckpts, tiny_corpus, tmp_path):
    with pytest.raises(ValueError, match="one checkpoint"):
        evaluate([f"ckpt=[{ckpts[64]},{ckpts[128]}]", "protocol=cpo_retrieval"] + _data(tiny_corpus), tmp_path)
