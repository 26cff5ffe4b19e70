"""speechret.data.synthetic: the built-in espeak-ng Mandarin corpus."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from speechret.data import Manifest, load_corpus
from speechret.data.pronunciation import pinyin_to_labels, text_to_labels
from speechret.data.synthetic import (
    DEFAULT_WORDS,
    DSPSPEECH20_WORDS,
    VOICE,
    EspeakSynth,
    available_variants,
    generate_corpus,
    main,
    make_speakers,
    synthesize,
)

WORDS = [("北京", "bei3 jing1"), ("上海", "shang4 hai3"), ("数字", "shu4 zi4")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Manifest:
    return generate_corpus(tmp_path_factory.mktemp("syn") / "c", n_speakers=2, words=WORDS, seed=7)


def _read(path: str) -> tuple[np.ndarray, int]:
    x, sr = sf.read(path, dtype="float32")
    return x, sr


def test_voice_and_variants_exist():
    import espeakng_loader

    lang = os.path.join(espeakng_loader.get_data_path(), "lang", "sit")
    assert any(name.lower() == VOICE for name in os.listdir(lang))
    have = set(available_variants())
    assert {"m1", "f2", "klatt"} <= have
    assert {s.variant for s in make_speakers(6)} <= have


def test_files_and_manifest(corpus, tmp_path_factory):
    assert len(corpus) == 2 * 3
    assert corpus.speakers == ["syn00", "syn01"]
    assert corpus.labels == [0, 1, 2]
    assert corpus.label_names == {0: "北京", 1: "上海", 2: "数字"}
    root = os.path.dirname(corpus[0].path)
    for it in corpus:
        assert os.path.isfile(it.path)
        assert it.path.startswith(os.path.join(os.path.dirname(os.path.dirname(root)), "wav", it.speaker))
        assert it.pinyin == WORDS[it.label][1] and it.language == "zh" and it.repetition == 1
        info = sf.info(it.path)
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert it.duration == pytest.approx(info.frames / 16000)
        x, _ = _read(it.path)
        assert 0.3 < it.duration < 3.0
        peak = np.abs(x).max()
        assert 0.2 < peak < 0.95  # -3 dBFS minus the speaker gain
        # speech in the middle, quiet (noise floor only) at the edges
        rms_mid = np.sqrt(np.mean(x[len(x) // 4 : 3 * len(x) // 4] ** 2))
        rms_edge = np.sqrt(np.mean(x[:800] ** 2))
        assert rms_mid > 0.02 and rms_edge < 0.005
        assert pinyin_to_labels(it.pinyin) == text_to_labels(it.text)
    back = Manifest.from_csv(os.path.join(os.path.dirname(os.path.dirname(root)), "manifest.csv"))
    assert back == corpus


def test_speakers_differ(corpus):
    a, _ = _read(corpus.filter(speakers="syn00", labels=0)[0].path)
    b, _ = _read(corpus.filter(speakers="syn01", labels=0)[0].path)
    assert len(a) != len(b) or not np.allclose(a, b, atol=1e-3)
    sp = make_speakers(2, seed=7)
    assert sp[0].gender != sp[1].gender and sp[0].variant != sp[1].variant


def test_same_seed_is_bit_exact_and_independent_of_the_rest(corpus, tmp_path):
    # different word order and extra words, 1 worker instead of several: same audio per utterance
    other = generate_corpus(tmp_path / "d", n_speakers=2, words=[WORDS[2], ("你好", "ni3 hao3"), WORDS[0]], seed=7, workers=1)
    ref = {(it.speaker, it.text): it for it in corpus}
    for it in other:
        if (it.speaker, it.text) in ref:
            with open(it.path, "rb") as f1, open(ref[(it.speaker, it.text)].path, "rb") as f2:
                assert f1.read() == f2.read(), it.id
    # another seed gives other speakers and other audio
    third = generate_corpus(tmp_path / "e", n_speakers=1, words=WORDS[:1], seed=8)
    with open(third[0].path, "rb") as f1, open(corpus[0].path, "rb") as f2:
        assert f1.read() != f2.read()


def test_idempotent(corpus):
    root = os.path.dirname(os.path.dirname(os.path.dirname(corpus[0].path)))
    mtimes = {it.path: os.path.getmtime(it.path) for it in corpus}
    again = generate_corpus(root, n_speakers=2, words=WORDS, seed=7)
    assert again == corpus
    assert {it.path: os.path.getmtime(it.path) for it in again} == mtimes
    params = json.loads(open(os.path.join(root, "synthetic.json"), encoding="utf-8").read())
    assert params["seed"] == 7 and params["n_speakers"] == 2 and params["voice"] == VOICE


def test_repetitions_differ_and_regeneration_replaces(tmp_path):
    m = generate_corpus(tmp_path, n_speakers=1, words=WORDS[:1], repetitions=2, seed=1)
    assert [it.repetition for it in m] == [1, 2] and [it.id for it in m] == ["syn00_w000_r01", "syn00_w000_r02"]
    a, _ = _read(m[0].path)
    b, _ = _read(m[1].path)
    assert len(a) != len(b) or not np.allclose(a, b, atol=1e-3)
    m2 = generate_corpus(tmp_path, n_speakers=1, words=["饭店"], seed=1)  # other params: replaced
    assert len(m2) == 1 and m2[0].pinyin == "fan4 dian4" and not os.path.exists(m[1].path)


def test_sentences_and_both(tmp_path):
    sent = [("我在北京学习语音识别", "wo3 zai4 bei3 jing1 xue2 xi2 yu3 yin1 shi2 bie2")]
    m = generate_corpus(tmp_path, n_speakers=1, words=WORDS[:2], sentences=sent, kind="both", seed=3)
    assert [(it.id, it.label) for it in m] == [("syn00_w000_r01", 0), ("syn00_w001_r01", 1), ("syn00_s000_r01", 2)]
    s = m[2]
    assert s.text == sent[0][0] and s.pinyin == sent[0][1]
    assert s.duration > 1.5 * max(m[0].duration, m[1].duration)  # ten syllables vs two
    only = generate_corpus(tmp_path / "s", n_speakers=1, sentences=sent, kind="sentences", seed=3)
    assert [it.label for it in only] == [0]


def test_synthesize_api_and_errors():
    spk = make_speakers(1)[0]
    with EspeakSynth(workers=1) as eng:
        x = synthesize("ni3 hao3", spk, engine=eng)
        y = synthesize("ni3 hao3", spk, engine=eng)
        raw, sr = eng.synth("ni3 hao3")
        assert sr == 22050 and raw.dtype == np.int16 and np.abs(raw).max() > 1000
        with pytest.raises(Exception, match="not found"):
            eng.synth("ni3 hao3", voice="no-such-voice")
        z = synthesize("ni3 hao3", spk, engine=eng)  # the helper survives errors
    assert x.dtype == np.float32 and np.array_equal(x, y) and np.array_equal(x, z)
    with pytest.raises(ValueError):
        generate_corpus("/nonexistent/never", kind="poems")
    with pytest.raises(ValueError):
        make_speakers(0)


def test_defaults_start_with_dspspeech20_words():
    assert DEFAULT_WORDS[:12] == DSPSPEECH20_WORDS
    assert [w for w, _ in DSPSPEECH20_WORDS] == "数字 语音 语言 识别 中国 总工 北京 背景 上海 商行 复旦 饭店".split()
    assert len(DEFAULT_WORDS) >= 32 and len({w for w, _ in DEFAULT_WORDS}) == len(DEFAULT_WORDS)


def test_cli_and_load_corpus(tmp_path, capsys):
    assert main([str(tmp_path / "cli"), "--speakers", "1", "--words", "北京,上海"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["items"] == 2 and summary["speakers"] == 1
    m = load_corpus("synthetic", tmp_path / "cli", n_speakers=1, words=["北京", "上海"])
    assert [it.pinyin for it in m] == ["bei3 jing1", "shang4 hai3"]
    assert load_corpus("synthetic", tmp_path / "cli") == m  # no parameters: load what is there


def test_wav_writer_is_soundfile_with_exact_pcm16(tmp_path):
    import wave

    from speechret.audio import to_pcm16
    from speechret.data.synthetic.dsp import write_wav16

    x = np.array([-1.0, -0.5 / 32768, 0.5 / 32768, 1.5 / 32768, 0.25, 32767 / 32768], np.float32)
    write_wav16(tmp_path / "a.wav", x, 16000)
    y, sr = sf.read(tmp_path / "a.wav", dtype="int16")
    assert sr == 16000 and np.array_equal(y, to_pcm16(x))
    with wave.open(str(tmp_path / "b.wav"), "wb") as wf:  # the stdlib writer earlier versions used
        wf.setnchannels(1), wf.setsampwidth(2), wf.setframerate(16000), wf.writeframes(to_pcm16(x).tobytes())
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert not list(tmp_path.glob("*.tmp"))
