"""Evaluation protocols on a tiny synthetic corpus: who queries whom, what is relevant."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechret.cpo import measure_snr_db
from speechret.evaluate.protocols import CPORetrieval, CrossSpeaker, Keyword, Noise
from speechret.evaluate.runner import load_eval_data


@pytest.fixture(scope="module")
def data(tiny_corpus):
    cfg = {"_target_": "speechret.data.datamodule.SpeechDataModule", "corpus": "manifest",
           "root": str(tiny_corpus / "manifest.csv"), "split": "speaker", "seed": 0}
    return load_eval_data(cfg, "none")


def test_eval_data_is_the_whole_corpus_with_label_selection(tiny_corpus, data):
    assert len(data) == 4 * 4 * 2
    cfg = {"_target_": "speechret.data.datamodule.SpeechDataModule", "corpus": "manifest",
           "root": str(tiny_corpus / "manifest.csv")}
    sub = load_eval_data(cfg, "none", labels=[1, 2])
    assert len(sub) == 16 and set(sub.labels) == {1, 2}  # corpus labels kept, not relabelled


def test_cpo_retrieval_queries_are_processed_copies_of_their_sources(data):
    p = CPORetrieval(cpos=["gain_+3dB", "mp3_128k", "gaussian_30dB"], max_queries=5, seed=1)
    t = p.build(data)
    assert t.n_queries == 15 and t.n_database == len(data)
    assert t.group_names() == ["gain_+3dB", "mp3_128k", "gaussian_30dB"]
    assert np.array_equal(t.relevant, data.labels[t.source][:, None] == data.labels[None, :])
    for q in range(5):  # +3 dB: power × 10^0.3 exactly
        src = data.waves[t.source[q]]
        ratio = np.sum(t.query_waves[q].astype(np.float64) ** 2) / np.sum(src.astype(np.float64) ** 2)
        assert ratio == pytest.approx(10 ** 0.3, rel=1e-4)
    for q in range(10, 15):  # 30 dB Gaussian noise at the requested SNR
        src = torch.as_tensor(data.waves[t.source[q]])
        assert float(measure_snr_db(src, torch.as_tensor(t.query_waves[q]))) == pytest.approx(30.0, abs=0.05)
    again = CPORetrieval(cpos=["gain_+3dB", "mp3_128k", "gaussian_30dB"], max_queries=5, seed=1).build(data)
    assert all(np.array_equal(a, b) for a, b in zip(t.query_waves, again.query_waves))  # seeded


def test_cross_speaker_relevance_excludes_the_query_speaker(data):
    t = CrossSpeaker(max_queries=None).build(data)
    spk, lab = data.speakers, data.labels
    # each query is a database item itself: no identity retrieval; a speaker protocol
    assert t.self_query and CrossSpeaker.speaker_disjoint and CrossSpeaker.min_speakers == 2
    assert Keyword.speaker_disjoint and not CPORetrieval.speaker_disjoint and not Noise.speaker_disjoint
    for q, s in enumerate(t.source):
        assert t.exclude[q, s]  # itself
        same = spk == spk[s]
        assert t.exclude[q, same].all() and not t.exclude[q, ~same].any()
        assert np.array_equal(t.relevant[q], (lab == lab[s]) & ~same)
        rel_same, exc_same = t.views["same_speaker"]
        assert rel_same[q].sum() == 1  # the other repetition by the same speaker
        assert np.array_equal(t.views["any_speaker"][0][q], (lab == lab[s]) & (np.arange(len(lab)) != s))


def test_cross_speaker_reports_each_query_speaker_apart(data):
    from speechret.evaluate.retrieval import Scored, trial_metrics
    from speechret.metrics import mean_average_precision

    t = CrossSpeaker(max_queries=None).build(data)
    assert np.array_equal(t.breakdowns["query_speaker"], data.speakers[t.source])
    D = np.random.default_rng(0).random(t.relevant.shape).astype(np.float32)
    m, _ = trial_metrics(Scored(None, D, None, None, 0.0, 0.0), t, threshold=0.5)
    speakers = sorted(set(data.speakers))
    assert len(speakers) > 1
    weighted = 0.0
    for s in speakers:
        rows = np.flatnonzero(data.speakers[t.source] == s)
        want = mean_average_precision(D[rows], t.relevant[rows], exclude=t.exclude[rows])["map"]
        assert m[f"query_speaker.{s}.map"] == pytest.approx(want)
        assert m[f"query_speaker.{s}.n_queries"] == len(rows)
        weighted += want * len(rows)
    assert weighted / t.n_queries == pytest.approx(m["map"])  # every query has an other-speaker match
    with pytest.raises(ValueError, match="breakdown 'query_speaker' has 3 parts"):
        type(t)(t.protocol, t.query_waves, t.db_waves, t.relevant, breakdowns={"query_speaker": np.zeros(3)})


def test_keyword_database_is_other_speakers_words_with_pauses(data):
    p = Keyword(query_speakers=1, n_utterances=20, words_per_utterance=(2, 3), pause_s=(0.1, 0.2), seed=3)
    t = p.build(data)
    qspk = t.info["query_speakers"]
    assert len(qspk) == 1 and t.mode == "keyword"
    assert t.n_queries == 8  # 4 words × 2 repetitions of the query speaker
    by_id = {it.id: k for k, it in enumerate(data.items)}
    for j, meta in enumerate(t.info["database"]):
        assert meta["speaker"] not in qspk
        assert 2 <= len(meta["labels"]) <= 3 and len(set(meta["labels"])) == len(meta["labels"])
        words = [by_id[i] for i in meta["items"]]
        assert all(data.speakers[w] == meta["speaker"] for w in words)
        n_words = sum(len(data.waves[w]) for w in words)
        n_pause = len(t.db_waves[j]) - n_words
        assert (len(words) + 1) * 0.1 * 16000 - (len(words) + 1) <= n_pause <= (len(words) + 1) * 0.2 * 16000
        for q in range(t.n_queries):
            assert t.relevant[q, j] == (t.query_labels[q] in meta["labels"])
    assert t.relevant.any() and not t.relevant.all()


def test_noise_protocol_adds_each_noise_at_each_snr(data):
    p = Noise(noises=["white", "car", "cafe"], snrs=[0, 10], max_queries=3, seed=0)
    t = p.build(data)
    assert t.group_names() == ["clean", "white.0", "white.10", "car.0", "car.10", "cafe.0", "cafe.10"]
    assert t.n_queries == 3 * 7
    g = np.asarray(t.groups)
    for name, snr in [("white.0", 0), ("car.10", 10), ("cafe.0", 0)]:
        for q in np.flatnonzero(g == name):
            clean = torch.as_tensor(data.waves[t.source[q]])
            assert float(measure_snr_db(clean, torch.as_tensor(t.query_waves[q]))) == pytest.approx(snr, abs=0.05)
    for q in np.flatnonzero(g == "clean"):
        assert np.array_equal(t.query_waves[q], data.waves[t.source[q]])
