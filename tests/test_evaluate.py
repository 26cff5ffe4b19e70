"""evaluate.py end to end: every protocol on a tiny synthetic corpus leaves metrics.json (flat
keys), PNG plots and report.md; the evaluation set is disjoint from the checkpoint's training data
(its test split, or data=... minus what it trained or validated on) and says so in the report's
first line; thresholds come from the training data's validation split (train + val when that
cannot form a pair of the protocol)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from speechret.evaluate.runner import run_evaluation
from speechret.apps.train import train

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose(name, overrides=overrides)


def _train(corpus: Path, out: Path, extra: list[str]) -> str:
    cfg = compose_cfg("train", ["experiment=cnn", "debug=limit", "trainer.max_epochs=1", "logger=csv", "test=false",
                                "data=manifest", f"data.root={corpus / 'manifest.csv'}", "data.batch_size=4",
                                # 4 speakers: 1 train, 1 val, 2 test (two unheard voices for the
                                # speaker protocols)
                                "data.val_fraction=0.25", "data.test_fraction=0.5", f"paths.output_dir={out}"] + extra)
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
    m = evaluate([f"ckpt_path={ckpts[64]}", "protocol=cpo_retrieval", "protocol.max_queries=8",
                  "protocol.cpos=[mp3_128k,requant_8bit,gain_-3dB,gain_+3dB,gaussian_30dB,resample_8k]"]
                 + _data(tiny_corpus), tmp_path)
    for k in ("map", "precision", "recall", "f1", "threshold", "n_queries", "n_database", "identity_recall",
              "far@0.02", "far@0.16", "inter_ber_mean", "ber_mean.mp3_128k", "ber_mean.gain_+3dB", "map.resample_8k"):
        assert k in m, k
    # data=<the training corpus> evaluates what the checkpoint never saw: its 2 test speakers
    assert m["n_queries"] == 6 * 8 and m["n_database"] == 16 == m["n_eval_items"]
    assert m["eval_set"] == "unseen" and not m["eval_includes_training_data"]
    assert (tmp_path / "report.md").read_text().splitlines()[2].startswith("- **evaluation set**: `unseen`")
    assert "(val)" in m["threshold_source"] and "max F1" in m["threshold_source"]
    assert 0.0 <= m["identity_recall"] <= 1.0 and 0.0 <= m["map"] <= 1.0
    # the same threshold whatever is evaluated: it never looks at the evaluation set
    m2 = evaluate([f"ckpt_path={ckpts[64]}", "protocol=cpo_retrieval", "protocol.max_queries=4",
                   "protocol.cpos=[mp3_128k,requant_8bit,gain_-3dB,gain_+3dB,gaussian_30dB,resample_8k]",
                   "evaluate.labels=[0,1]"] + _data(tiny_corpus), tmp_path / "labels")
    assert m2["threshold"] == m["threshold"] and m2["n_database"] == 8
    # a given threshold is used as is
    m3 = evaluate([f"ckpt_path={ckpts[64]}", "protocol=cpo_retrieval", "protocol.max_queries=4", "protocol.cpos=[gain_-3dB]",
                   "evaluate.threshold=0.2"] + _data(tiny_corpus), tmp_path / "given")
    assert m3["threshold"] == 0.2 and m3["threshold_source"].startswith("given")


def test_evaluation_sets_test_unseen_under_another_root_and_all(ckpts, tiny_corpus, tmp_path):
    base = [f"ckpt_path={ckpts[64]}", "protocol=cpo_retrieval", "protocol.max_queries=4", "protocol.cpos=[gain_-3dB]"]
    # no data=...: the checkpoint's own test split (the DataModule's split of its stored config)
    t = evaluate(base, tmp_path / "test")
    assert t["eval_set"] == "test" and t["n_database"] == 16 and t["n_eval_speakers"] == 2
    assert "none of them trained or validated on (checked)" in t["eval_set_description"]
    # the same corpus copied elsewhere: its items are recognised by id / file, not by absolute path
    copy = tmp_path / "copy"
    shutil.copytree(tiny_corpus, copy)
    u = evaluate(base + ["data=manifest", f"data.root={copy / 'manifest.csv'}"], tmp_path / "unseen")
    assert u["eval_set"] == "unseen" and u["n_database"] == 16 and u["map"] == pytest.approx(t["map"])
    assert "without the 16 items the checkpoint trained or validated on" in u["eval_set_description"]
    # all: everything, labelled as including training data in the report's first line
    a = evaluate(base + ["evaluate.set=all"], tmp_path / "all")
    assert a["eval_set"] == "all" and a["n_database"] == 32 and a["eval_includes_training_data"]
    assert "INCLUDES TRAINING DATA: 16 of them" in (tmp_path / "all" / "report.md").read_text().splitlines()[2]
    with pytest.raises(ValueError, match="own test split"):
        evaluate(base + ["evaluate.set=test"] + _data(tiny_corpus), tmp_path / "refused")


def test_cross_speaker_reports_same_speaker_separately(ckpts, tiny_corpus, tmp_path):
    # no data=...: the checkpoint's own test split (2 speakers).  Its validation split holds one
    # speaker, so no cross-speaker pair: the thresholds fall back to train + val, and say so
    m = evaluate([f"ckpt_path={ckpts[64]}", "protocol=cross_speaker", "evaluate.baselines=[dtw]"], tmp_path)
    for k in ("map", "same_speaker.map", "any_speaker.map", "mfcc_dtw.map", "mfcc_dtw.threshold", "far@0.10",
              "intra_ber_mean"):
        assert k in m, k
    assert m["eval_set"] == "test" and m["n_eval_speakers"] == 2
    per_speaker = {k for k in m if k.startswith("query_speaker.") and k.endswith(".map")}
    assert len(per_speaker) == 2 and "## By query speaker" in (tmp_path / "report.md").read_text()
    assert m["n_queries"] == 16 and "val" in m["threshold_source"] and "train" in m["threshold_source"]
    assert "threshold_fallback" in m["threshold_note"]
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert lines[2].startswith("- **evaluation set**: `test` — the checkpoint's own test split")
    assert lines[3].startswith("- **thresholds**: the val split cannot form cross_speaker pairs")
    # a query is not its own intra-class pair: identity retrieval is not measured, and the
    # intra-class BER is that of same-content pairs by another speaker (not 0 by construction)
    assert "identity_recall" not in m and m["intra_ber_n"] > 0 and m["intra_ber_mean"] > 0
    # without the fallback the run stops with a clear error
    with pytest.raises(ValueError, match="no data to choose a threshold"):
        evaluate([f"ckpt_path={ckpts[64]}", "protocol=cross_speaker", "evaluate.threshold_fallback=null"], tmp_path / "no")


def test_precision_floor_threshold_through_evaluate(ckpts, tmp_path):
    """evaluate.threshold_criterion=precision: γ of the highest validation recall whose validation
    precision reaches evaluate.min_precision; the max-F1 point meets its own precision, so the floor
    set there keeps at least its recall."""
    f1 = evaluate([f"ckpt_path={ckpts[64]}", "protocol=cross_speaker"], tmp_path / "f1")
    assert f1["threshold_source"].startswith("max F1") and 0 < f1["val_precision"] <= 1
    floor = f1["val_precision"] - 1e-9
    p = evaluate([f"ckpt_path={ckpts[64]}", "protocol=cross_speaker", "evaluate.threshold_criterion=precision",
                  f"evaluate.min_precision={floor}"], tmp_path / "p")
    assert p["threshold_source"].startswith("max recall at precision ≥")
    assert p["val_precision"] >= floor and p["val_recall"] >= f1["val_recall"]
    # a floor no threshold reaches: the most precise γ, and the report says so
    if p["val_precision"] < 1.0:
        q = evaluate([f"ckpt_path={ckpts[64]}", "protocol=cross_speaker", "evaluate.threshold_criterion=precision",
                      "evaluate.min_precision=1.0"], tmp_path / "q")
        src = q["threshold_source"]
        assert (src.startswith("max recall at precision ≥ 1") and q["val_precision"] == 1.0) or \
            src.startswith(f"max precision ({q['val_precision']:.4f}: no threshold reaches precision 1)")


def test_keyword_protocol_with_dtw_baseline(ckpts, tiny_corpus, tmp_path):
    m = evaluate([f"ckpt_path={ckpts[64]}", "protocol=keyword", "protocol.n_utterances=12", "evaluate.baselines=[dtw]",
                  "evaluate.threshold=0.3", "evaluate.thresholds.mfcc_dtw=0.25"] + _data(tiny_corpus), tmp_path)
    for k in ("keyword_recall", "keyword_precision", "mfcc_dtw.keyword_recall", "mfcc_dtw.keyword_precision", "map"):
        assert k in m, k
    assert m["n_database"] == 12 and m["mfcc_dtw.threshold"] == 0.25


def test_noise_protocol_keys(ckpts, tiny_corpus, tmp_path):
    m = evaluate([f"ckpt_path={ckpts[64]}", "protocol=noise", "protocol.snrs=[0,25]", "protocol.max_queries=4",
                  "evaluate.threshold=0.3"] + _data(tiny_corpus), tmp_path)
    for noise in ("cafe", "white", "car"):
        for snr in (0, 25):
            for key in ("ap", "recall", "map"):
                assert f"{key}.{noise}.{snr}" in m
    assert m["n_queries"] == 4 * 7
    assert "Noise robustness" in (tmp_path / "report.md").read_text()


def test_hash_length_table_over_checkpoints(ckpts, tiny_corpus, tmp_path):
    m = evaluate([f"ckpt_path=[{ckpts[128]},{ckpts[64]}]", "protocol=hash_length", "protocol.inner.max_queries=4"]
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
    m = evaluate([f"ckpt_path={ckpts[64]}", "protocol=retrieval_time", "protocol.n_items=1000", "protocol.hash_lengths=[64]",
                  "protocol.n_queries=10", "protocol.repeats=1", "protocol.e2e_queries=3"] + _data(tiny_corpus), tmp_path)
    assert m["time.64.two_stage_ms"] > 0 and m["time.64.traversal_ms"] > 0 and m["e2e.e2e_mean_s"] > 0
    assert np.isclose(m["time.64.source_recall"], 1.0)


def test_single_protocol_refuses_several_checkpoints(ckpts, tiny_corpus, tmp_path):
    with pytest.raises(ValueError, match="one checkpoint"):
        evaluate([f"ckpt_path=[{ckpts[64]},{ckpts[128]}]", "protocol=cpo_retrieval"] + _data(tiny_corpus), tmp_path)


class _FakeHasher:
    """Stands in for a Hasher: fixed codes per waveform (index = first sample)."""

    def __init__(self, method, codes, n_classes=0):
        self.method, self.codes, self.n_classes, self.config = method, codes, n_classes, {}

    def codes_of_waves(self, waves):
        idx = [int(w[0]) for w in waves]
        return self.codes[idx] if isinstance(self.codes, np.ndarray) else [self.codes[i] for i in idx]


def test_hash_system_paper_b_distance_is_the_two_stage_order():
    from speechret.evaluate.systems import HashSystem

    rng = np.random.default_rng(0)
    n, C, K = 12, 3, 16
    cat = rng.integers(0, C, n)
    codes = np.concatenate([np.eye(C, dtype=bool)[cat], rng.random((n, K)) < 0.5], axis=1)
    sys_ = HashSystem(_FakeHasher("paper_b", codes, C))
    waves = [np.full(4, i, np.float32) for i in range(n)]
    q = db = sys_.encode(waves)
    D = sys_.distances(q, db)
    ber = (codes[:, None, C:] != codes[None, :, C:]).mean(-1)
    assert np.allclose(D, ber + (cat[:, None] != cat[None, :]))
    assert np.allclose(sys_.ber(q, db), ber) and sys_.n_bits(codes) == K
    # any threshold < 1 retrieves only the query's category (stage 1), then BER(h2) < T (stage 2)
    assert not ((D < 0.99) & (cat[:, None] != cat[None, :])).any()


def test_hash_system_paper_c_uses_the_sliding_decision_distance():
    from speechret.evaluate.systems import HashSystem
    from speechret.hashing.sliding import sliding_match

    rng = np.random.default_rng(1)
    seqs = [rng.random((int(rng.integers(1, 6)), 27)) < 0.5 for _ in range(10)]
    sys_ = HashSystem(_FakeHasher("paper_c", seqs))
    codes = sys_.encode([np.full(3, i, np.float32) for i in range(10)])
    K = sys_.distances(codes[:4], codes, mode="keyword")
    assert K.dtype == np.float64 and not sys_.threshold_strict  # paper C: d <= gamma, float64
    for a in range(4):
        for b in range(10):
            for g in (0.2, 0.35, 0.5):
                assert sliding_match(seqs[a], seqs[b], g)[0] == (K[a, b] <= g) == \
                    sys_.retrieved(codes[a : a + 1], codes[b : b + 1], g, mode="keyword")[0, 0]
    # full speech: paper C §4.4 slides the query over the item (default) ...
    np.testing.assert_array_equal(sys_.distances(codes, codes, mode="full"), sys_.distances(codes, codes, "keyword"))
    # ... or, opted in, the shorter sequence over the longer
    F = HashSystem(_FakeHasher("paper_c", seqs), direction="symmetric").distances(codes, codes, mode="full")
    assert np.allclose(F, F.T) and np.allclose(np.diag(F), 0.0)


@pytest.mark.realdata
def test_protocols_on_dspspeech20_subset(dspspeech20_root, tmp_path):
    """Real recordings: a briefly trained paper-A CNN through keyword and noise on 4 words, evaluated
    on DSPSpeech-20 minus everything it trained or validated on."""
    data = ["data=dspspeech20", f"data.root={dspspeech20_root}"]
    cfg = compose_cfg("train", ["experiment=cnn", "debug=limit", "trainer.max_epochs=1", "logger=csv", "test=false",
                                "data.labels=[0,1,2,3]", f"paths.output_dir={tmp_path / 'train'}", *data])
    ckpt = train(cfg)["best_checkpoint"]
    sub = ["evaluate.labels=[0,1,2,3]", "evaluate.max_items=160", *data]
    k = evaluate([f"ckpt_path={ckpt}", "protocol=keyword", "protocol.n_utterances=20", "protocol.max_queries=8"] + sub,
                 tmp_path / "kw")
    assert k["n_queries"] == 8 and k["n_database"] == 20 and "(val)" in k["threshold_source"]
    # unseen: only the 4 test speakers (speaker-disjoint 16/4/4 split) — 4 words × 8 repetitions each, but one
    # of them, 15307130191, recorded each word 3 times under 8 repetition numbers: its 5 copies a word are left out
    assert k["eval_set"] == "unseen" and k["n_eval_speakers"] == 4 and "15307130191" in k["eval_set_description"]
    assert k["n_eval_items"] == 4 * 4 * 8 - 4 * 5
    n = evaluate([f"ckpt_path={ckpt}", "protocol=noise", "protocol.snrs=[5]", "protocol.max_queries=5"] + sub, tmp_path / "noise")
    assert n["n_queries"] == 5 * 4 and n["n_database"] == 4 * 4 * 8 - 4 * 5 and "ap.white.5" in n


def test_a_run_without_validation_speakers_is_evaluated_from_its_last_checkpoint(tiny_corpus, tmp_path):
    """A refit (bench/cross_speaker.py --refit): data.val_speakers=[] trains on every speaker but the
    test ones, keeps no best checkpoint (nothing to choose it by) and its last one evaluates on the
    unseen test speakers with a threshold chosen elsewhere (evaluate.threshold)."""
    cfg = compose_cfg("train", ["experiment=cnn", "debug=limit", "trainer.max_epochs=1", "logger=csv", "test=false",
                                "data=manifest", f"data.root={tiny_corpus / 'manifest.csv'}", "data.batch_size=4",
                                "data.test_fraction=0.5", "data.val_speakers=[]", f"paths.output_dir={tmp_path / 'train'}"])
    summary = train(cfg)
    assert summary["best_checkpoint"] == "" and Path(summary["last_checkpoint"]).is_file()
    m = evaluate([f"ckpt_path={summary['last_checkpoint']}", "protocol=cross_speaker", "evaluate.threshold=0.25"],
                 tmp_path / "eval")
    assert m["eval_set"] == "test" and m["n_eval_speakers"] == 2 and m["n_database"] == 16
    assert "none of them nor their speakers trained or validated on (checked)" in m["eval_set_description"]
    assert m["threshold"] == 0.25 and m["threshold_source"].startswith("given")
