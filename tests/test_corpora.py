"""speechret.data.corpora: corpus layouts on tiny fake trees, and DSPSpeech-20 (realdata)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechret.data import (
    Manifest,
    ManifestError,
    load_aishell3,
    load_corpus,
    load_dspspeech20,
    load_manifest_file,
    load_pattern_folder,
    load_thchs30,
)
from speechret.data.corpora import pattern_to_regex


def _wav(path: Path, seconds: float = 0.25, sr: int = 16000, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sr))
    x = (0.1 * np.sin(2 * np.pi * 440 * np.arange(n) / sr)).astype(np.float32)
    sf.write(path, x, sr, format=fmt)
    return path


# ---------------------------------------------------------------------------------- THCHS-30
def _thchs_tree(root: Path) -> Path:
    data = root / "data_thchs30"
    trn = {
        "A11_0": ("绿 是 阳春 烟 景", "lv4 shi4 yang2 chun1 yan1 jing3", "l v4 sh ix4"),
        "A11_1": ("他 仅 凭 腰部 的 力量", "ta1 jin3 ping2 yao1 bu4 de5 li4 liang4", "t a1"),
        "B2_0": ("绿 是  阳春 烟 景", "LV4 shi4 yang2 chun1 yan1 jing3", "l v4"),
        "C3_5": ("企业 依靠 技术", "qi3 ye4 yi1 kao4 ji4 shu4", "q i3"),
    }
    for stem, lines in trn.items():
        _wav(data / "data" / f"{stem}.wav", 0.2 + 0.1 * len(stem))
        (data / "data" / f"{stem}.wav.trn").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for split, stems in {"train": ["A11_0", "A11_1"], "dev": ["B2_0"], "test": ["C3_5"]}.items():
        (data / split).mkdir(parents=True)
        for s in stems:
            (data / split / f"{s}.wav.trn").write_text(f"../data/{s}.wav.trn\n", encoding="utf-8")
    # the dev transcript repeats the 3 lines instead of pointing
    (data / "dev" / "B2_0.wav.trn").write_text("\n".join(trn["B2_0"]) + "\n", encoding="utf-8")
    return data


def test_thchs30_layout(tmp_path):
    root = _thchs_tree(tmp_path)
    m = load_thchs30(tmp_path)  # the parent of data_thchs30/ works too
    assert [it.id for it in m] == ["A11_0", "A11_1", "B2_0", "C3_5"]
    a = m[0]
    assert a.speaker == "A11" and a.language == "zh" and a.split == "train"
    assert a.text == "绿 是 阳春 烟 景" and a.pinyin == "lv4 shi4 yang2 chun1 yan1 jing3"
    assert a.path == str(root / "data" / "A11_0.wav")
    assert a.duration == pytest.approx(0.7)
    assert [it.split for it in m] == ["train", "train", "dev", "test"]
    # same text (whitespace ignored) -> same label; labels = index in sorted distinct texts
    texts = sorted({"".join(it.text.split()) for it in m})
    assert [it.label for it in m] == [texts.index("".join(it.text.split())) for it in m]
    assert m[0].label == m[2].label and len(m.labels) == 3
    assert m[2].pinyin == "lv4 shi4 yang2 chun1 yan1 jing3"  # lower-cased
    test = load_thchs30(root, split="test", with_durations=False)
    assert [it.id for it in test] == ["C3_5"] and test[0].duration == 0.0
    assert test[0].label == m[3].label  # labels do not depend on the split selection
    assert [it.id for it in load_thchs30(root, split=["train", "dev"])] == ["A11_0", "A11_1", "B2_0"]


def test_thchs30_flat_data_dir_and_errors(tmp_path):
    _wav(tmp_path / "data" / "D4_1.wav")
    (tmp_path / "data" / "D4_1.wav.trn").write_text("你好\nni3 hao3\nn i3 h ao3\n", encoding="utf-8")
    m = load_thchs30(tmp_path)
    assert len(m) == 1 and m[0].split == "" and m[0].speaker == "D4" and m[0].label == 0
    (tmp_path / "data" / "D4_1.wav.trn").write_text("你好\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"D4_1\.wav\.trn: expected 3 lines"):
        load_thchs30(tmp_path)
    (tmp_path / "data" / "D4_1.wav.trn").write_text("../data/missing.wav.trn\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"D4_1\.wav\.trn: points to"):
        load_thchs30(tmp_path)
    with pytest.raises(ManifestError, match="not a THCHS-30 root"):
        load_thchs30(tmp_path / "data")


# ---------------------------------------------------------------------------------- AISHELL-3
def _aishell_tree(root: Path) -> None:
    for split, lines in {
        "train": [
            "SSB00050001.wav\t广 guang3 州 zhou1 女 nv3 大 da4 学 xue2 生 sheng1",
            "SSB00050002.wav\t北 bei3 京 jing1",
            "SSB01120001.wav\t北 bei3 京 jing1",
        ],
        "test": ["SSB00090001.wav\t上 shang4 海 hai3"],
    }.items():
        (root / split).mkdir(parents=True)
        (root / split / "content.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for ln in lines:
            name = ln.split()[0]
            _wav(root / split / "wav" / name[:7] / name, 0.3, sr=44100)


def test_aishell3_layout(tmp_path):
    _aishell_tree(tmp_path)
    m = load_aishell3(tmp_path)
    assert [it.id for it in m] == ["SSB00050001", "SSB00050002", "SSB01120001", "SSB00090001"]
    a = m[0]
    assert a.speaker == "SSB0005" and a.split == "train" and a.language == "zh"
    assert a.text == "广州女大学生" and a.pinyin == "guang3 zhou1 nv3 da4 xue2 sheng1"
    assert a.path == str(tmp_path / "train" / "wav" / "SSB0005" / "SSB00050001.wav")
    assert a.duration == pytest.approx(0.3)
    assert m[1].label == m[2].label != m[0].label
    assert m.speakers == ["SSB0005", "SSB0009", "SSB0112"]
    t = load_aishell3(tmp_path, split="test")
    assert len(t) == 1 and t[0].split == "test" and t[0].label == m[3].label


def test_aishell3_errors(tmp_path):
    _aishell_tree(tmp_path)
    (tmp_path / "test" / "content.txt").write_text("SSB00090001.wav\t上\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"test/content\.txt row 1"):
        load_aishell3(tmp_path)
    (tmp_path / "test" / "content.txt").write_text("SSB00090009.wav\t上 shang4\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="SSB00090009"):
        load_aishell3(tmp_path)
    with pytest.warns(UserWarning, match="not found"):
        assert len(load_aishell3(tmp_path, missing="skip")) == 3
    (tmp_path / "test" / "content.txt").unlink()
    with pytest.raises(ManifestError, match=r"split\(s\) \['test'\] not present"):
        load_aishell3(tmp_path, split="test")
    with pytest.raises(ManifestError, match="not an AISHELL-3 root"):
        load_aishell3(tmp_path / "train")


# ---------------------------------------------------------------------------------- folders
def test_pattern_folder_numeric_labels(tmp_path):
    _wav(tmp_path / "3_alice_1.wav")
    _wav(tmp_path / "3_alice_2.flac", 0.5)
    _wav(tmp_path / "sub" / "10_bob_smith_1.wav")
    (tmp_path / "notes_wav.txt").write_text("x")  # not audio: ignored
    (tmp_path / "readme.wav").write_bytes(b"")  # audio extension, no match: warned and skipped
    with pytest.warns(UserWarning, match="do not match"):
        m = load_pattern_folder(tmp_path)
    by = {it.id: it for it in m}
    assert set(by) == {"3_alice_1", "3_alice_2", "sub/10_bob_smith_1"}
    assert by["3_alice_2"].label == 3 and by["3_alice_2"].repetition == 2 and by["3_alice_2"].duration == 0.5
    assert by["sub/10_bob_smith_1"].speaker == "bob_smith" and by["sub/10_bob_smith_1"].label == 10
    with pytest.raises(ManifestError, match="do not match"):
        load_pattern_folder(tmp_path, strict=True)
    assert len(load_pattern_folder(tmp_path, recursive=False, with_durations=False, extensions=["flac"])) == 1


def test_pattern_folder_named_labels_and_paths(tmp_path):
    for spk in ("s1", "s2"):
        for word in ("yes", "no"):
            _wav(tmp_path / spk / f"{word}-{spk}-take0.wav")
    m = load_pattern_folder(tmp_path, pattern="{speaker}/{label}-{_}-take{index}.wav", language="en")
    assert len(m) == 4
    assert {(it.speaker, it.text, it.label) for it in m} == {
        ("s1", "no", 0), ("s1", "yes", 1), ("s2", "no", 0), ("s2", "yes", 1),
    }  # fmt: skip
    assert all(it.language == "en" and it.repetition == 0 for it in m)
    with pytest.raises(ValueError, match="unknown field"):
        pattern_to_regex("{word}_{speaker}.wav")
    with pytest.raises(ManifestError, match="no audio file"):
        load_pattern_folder(tmp_path, pattern="{label}.wav", recursive=False)


def test_pattern_folder_mp3(tmp_path):
    _wav(tmp_path / "1_a_1.mp3", 0.5, fmt="MP3")
    m = load_pattern_folder(tmp_path)
    assert len(m) == 1 and m[0].label == 1 and m[0].duration == pytest.approx(0.5, abs=0.1)


# ---------------------------------------------------------------------------------- manifests
def test_manifest_file_csv_aliases_and_flac_to_wav(tmp_path):
    _wav(tmp_path / "audio" / "x.wav", 0.5)
    _wav(tmp_path / "audio" / "y.flac", 0.25)
    (tmp_path / "list.csv").write_text(
        "file,class,speaker_id,text\naudio/x.flac,1,S1,hello\naudio/y.flac,0,S2,bye\n", encoding="utf-8"
    )
    m = load_manifest_file(tmp_path / "list.csv", with_durations=True)
    assert [it.path for it in m] == [str(tmp_path / "audio" / "x.wav"), str(tmp_path / "audio" / "y.flac")]
    assert [(it.id, it.label, it.speaker, it.text, it.duration) for it in m] == [
        ("x", 1, "S1", "hello", 0.5), ("y", 0, "S2", "bye", 0.25),
    ]  # fmt: skip
    (tmp_path / "bad.csv").write_text("file\naudio/x.wav\naudio/zz.wav\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"bad\.csv: audio file of item 'zz' not found"):
        load_manifest_file(tmp_path / "bad.csv")
    assert len(load_manifest_file(tmp_path / "bad.csv", check_files=False)) == 2


def test_manifest_file_jsonl_named_labels(tmp_path):
    _wav(tmp_path / "a.wav")
    _wav(tmp_path / "b.wav")
    rows = [{"path": "a.wav", "label": "dog", "speaker": "s"}, {"path": str(tmp_path / "b.wav"), "word_id": None}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    m = load_manifest_file(tmp_path / "m.jsonl")
    assert [(it.id, it.label, it.text) for it in m] == [("a", 0, "dog"), ("b", -1, "")]


def test_load_corpus_dispatch(tmp_path):
    _wav(tmp_path / "1_a_1.wav")
    assert len(load_corpus("folder", tmp_path)) == 1
    assert len(load_corpus("Pattern-Folder", tmp_path, pattern="{label}_{speaker}_{index}.wav")) == 1
    (tmp_path / "m.csv").write_text("path\n1_a_1.wav\n", encoding="utf-8")
    assert isinstance(load_corpus("manifest", tmp_path / "m.csv"), Manifest)
    with pytest.raises(ValueError, match="unknown corpus kind 'timit'"):
        load_corpus("timit", tmp_path)
    with pytest.raises(ManifestError, match="DSPSpeech-20 manifest not found"):
        load_corpus("DSPSpeech-20", tmp_path)


def test_dspspeech20_layout_on_a_fake_copy(tmp_path):
    _wav(tmp_path / "S1" / "S1-00-01.wav")  # listed as .flac, present as .wav
    _wav(tmp_path / "S1" / "S1-12-01.flac")
    (tmp_path / "manifest.csv").write_text(
        "path,speaker,word_id,text,pinyin,language,repetition\n"
        "S1/S1-00-01.flac,S1,0,数字,shu4 zi4,zh,1\nS1/S1-12-01.flac,S1,12,Speech,,en,1\n",
        encoding="utf-8",
    )
    m = load_dspspeech20(tmp_path)
    assert m[0].path.endswith("S1-00-01.wav") and m[0].id == "S1-00-01" and m[0].label == 0
    assert m[1].language == "en" and m[1].pinyin == "" and m[1].repetition == 1


@pytest.mark.realdata
def test_dspspeech20_real(dspspeech20_root):
    t0 = time.perf_counter()
    m = load_dspspeech20(dspspeech20_root)
    elapsed = time.perf_counter() - t0
    assert len(m) == 3840 and len(m.speakers) == 24 and m.labels == list(range(20))
    assert elapsed < 5.0, f"loading DSPSpeech-20 took {elapsed:.1f} s"
    zh = m.filter(languages="zh")
    assert zh.labels == list(range(12)) and len(zh) == 24 * 12 * 8
    assert all(it.pinyin for it in zh) and not any(it.pinyin for it in m.filter(languages="en"))
    names = m.label_names
    assert names[0] == "数字" and names[6] == "北京" and names[11] == "饭店"
    assert all(1 <= it.repetition <= 8 for it in m) and all(it.split == "" for it in m)
    d = m.durations
    assert (d > 0.5).all() and (d < 10).all()
    first = m[0]
    assert first.id == Path(first.path).stem and Path(first.path).is_file()
    # the synthetic corpus uses the same 12 Mandarin words in the same word_id order
    from speechret.data.synthetic import DSPSPEECH20_WORDS

    assert [(names[i], zh.filter(labels=i)[0].pinyin) for i in range(12)] == DSPSPEECH20_WORDS


def test_corpus_kind_is_canonical_and_a_config_error_names_the_key():
    from speechret.data import corpus_kind
    from speechret.errors import ConfigError

    assert corpus_kind("DSPSpeech-20") == "dspspeech20" and corpus_kind("espeak") == "synthetic"
    with pytest.raises(ConfigError, match=r"^data\.corpus: unknown corpus kind 'timit'"):
        corpus_kind("timit", key="data.corpus")
    from speechret.data.layout import resolve_missing

    with pytest.raises(ConfigError, match=r"^missing must be"):
        resolve_missing([], "m.csv", "ignore")
