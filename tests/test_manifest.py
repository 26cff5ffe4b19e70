"""speechret.data.manifest: Item / Manifest, CSV and JSONL round trips, errors naming file and row."""

from __future__ import annotations

import json
import math
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from speechret.data.manifest import FIELDS, Item, Manifest, ManifestError, audio_duration


def _items(root: Path) -> list[Item]:
    return [
        Item("a1", str(root / "wav" / "a1.wav"), "spkA", 3, "北京", "bei3 jing1", "zh", 1.25, "train", 1),
        Item("a2", str(root / "wav" / "a2.wav"), "spkA", 5, "上海, \"quoted\"", "shang4 hai3", "zh", 0.1, "", 2),
        Item("b1", str(root / "wav" / "b1.wav"), "spkB", 3, "北京", "bei3 jing1", "zh", 2.0 / 3.0, "test", -1),
        Item("b2", "/elsewhere/b2.flac", "spkB", 9, "Speech\nnewline", "", "en", 0.0, "val", 8),
    ]


def test_fields_follow_the_contract():
    assert FIELDS == ("id", "path", "speaker", "label", "text", "pinyin", "language", "duration", "split", "repetition")
    it = Item("x", "/a/x.wav")
    assert (it.speaker, it.label, it.text, it.pinyin, it.language, it.duration, it.split, it.repetition) == (
        "", -1, "", "", "", 0.0, "", -1,
    )  # fmt: skip


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_round_trip_is_lossless(tmp_path, fmt):
    m = Manifest(_items(tmp_path))
    out = tmp_path / f"manifest.{fmt}"
    m.save(out)
    back = Manifest.load(out)
    assert back == m
    assert back.items[2].duration == 2.0 / 3.0  # exact float
    # paths under the manifest folder are written relative, others absolute
    raw = out.read_text(encoding="utf-8")
    assert "wav/a1.wav" in raw and str(tmp_path) not in raw and "/elsewhere/b2.flac" in raw
    # relocatable: move the folder, paths follow
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    os.rename(tmp_path, moved)
    again = Manifest.load(moved / f"manifest.{fmt}")
    assert again[0].path == str(moved / "wav" / "a1.wav")


def test_sequence_protocol_and_views(tmp_path):
    m = Manifest(_items(tmp_path))
    assert len(m) == 4 and m[0].id == "a1" and [it.id for it in m] == ["a1", "a2", "b1", "b2"]
    assert isinstance(m[1:3], Manifest) and len(m[1:3]) == 2
    assert m.speakers == ["spkA", "spkB"]
    assert m.labels == [3, 5, 9]
    assert m.label_names == {3: "北京", 5: '上海, "quoted"', 9: "Speech\nnewline"}
    assert np.allclose(m.durations, [1.25, 0.1, 2 / 3, 0.0])
    s = m.summary()
    assert s["items"] == 4 and s["speakers"] == 2 and s["labels"] == 3
    assert s["label_counts"] == {3: 2, 5: 1, 9: 1}
    assert math.isclose(s["total_duration"], 1.25 + 0.1 + 2 / 3)
    assert s["min_duration"] == 0.1 and s["max_duration"] == 1.25 and s["unknown_durations"] == 1
    assert (m + m[:1])[-1].id == "a1"


def test_filter_and_relabel(tmp_path):
    m = Manifest(_items(tmp_path))
    assert [it.id for it in m.filter(labels=[3])] == ["a1", "b1"]
    assert [it.id for it in m.filter(labels=9)] == ["b2"]
    assert [it.id for it in m.filter(labels=np.int64(9))] == ["b2"]
    assert [it.id for it in m.filter(languages="zh", speakers=["spkA"])] == ["a1", "a2"]
    assert [it.id for it in m.filter(split="test")] == ["b1"]
    assert [it.id for it in m.filter(split=["train", "val"])] == ["a1", "b2"]
    assert len(m.filter(predicate=lambda it: it.duration > 1)) == 1

    sub = m.filter(labels=[5, 9])
    mapping = sub.relabel()
    assert mapping == {5: 0, 9: 1}
    assert [it.label for it in sub] == [0, 1]
    assert [it.label for it in m] == [3, 5, 3, 9]  # the parent manifest is untouched
    other = m.filter(labels=[9])
    other.relabel(mapping)
    assert other[0].label == 1
    with pytest.raises(KeyError):
        m.filter(labels=[3]).relabel(mapping)


def test_minimal_csv_with_aliases_and_defaults(tmp_path):
    (tmp_path / "m.csv").write_text("file,word_id,speaker_id\nsub/x.wav,2,S1\n/abs/y.flac,,S2\n", encoding="utf-8")
    m = Manifest.from_csv(tmp_path / "m.csv")
    assert m[0] == Item("x", str(tmp_path / "sub" / "x.wav"), "S1", 2)
    assert m[1].id == "y" and m[1].label == -1 and m[1].path == "/abs/y.flac"


def test_tsv_and_root_override(tmp_path):
    (tmp_path / "m.tsv").write_text("path\tlabel\na.wav\t1\n", encoding="utf-8")
    m = Manifest.from_csv(tmp_path / "m.tsv", root="/data/corpus")
    assert m[0].path == "/data/corpus/a.wav" and m[0].label == 1


@pytest.mark.parametrize(
    "content,match",
    [
        ("speaker,label\nS1,1\n", r"m\.csv: missing required column 'path'"),
        ("path,label\na.wav,1\nb.wav,one\n", r"m\.csv row 3: label 'one' is not an integer"),
        ("path,duration\na.wav,-2\n", r"m\.csv row 2: duration '-2' must be"),
        ("path,duration\na.wav,abc\n", r"m\.csv row 2: duration 'abc' is not a number"),
        ("path,repetition\na.wav,1.5\n", r"m\.csv row 2: repetition '1.5' is not an integer"),
        ("path,label\na.wav,-3\n", r"m\.csv row 2: label -3 must be >= 0"),
        ("path,label\na.wav,1\na.wav,2\n", r"m\.csv row 3: duplicate id 'a'"),
        ("path,label\na.wav,1,extra\n", r"m\.csv row 2: 3 cells but the header has 2"),
        ("path,label\n,1\n", r"m\.csv row 2: empty 'path'"),
        ("", r"m\.csv: manifest is empty"),
    ],
)
def test_csv_errors_name_file_and_row(tmp_path, content, match):
    (tmp_path / "m.csv").write_text(content, encoding="utf-8")
    with pytest.raises(ManifestError, match=match):
        Manifest.from_csv(tmp_path / "m.csv")


def test_jsonl_errors_name_file_and_row(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"path": "a.wav", "label": 1}\n\n{"path": "b.wav", "label": "x"}\n', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"m\.jsonl row 3: label 'x' is not an integer"):
        Manifest.from_jsonl(p)
    p.write_text('{"path": "a.wav"}\n{not json}\n', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"m\.jsonl row 2: invalid JSON"):
        Manifest.from_jsonl(p)
    p.write_text('["a.wav"]\n', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"m\.jsonl row 1: expected a JSON object"):
        Manifest.from_jsonl(p)
    with pytest.raises(ManifestError, match="not found"):
        Manifest.from_jsonl(tmp_path / "missing.jsonl")
    assert issubclass(ManifestError, ValueError)


def test_label_names_can_be_mapped(tmp_path):
    p = tmp_path / "m.jsonl"
    rows = [{"path": "a.wav", "label": "dog"}, {"path": "b.wav", "label": "cat", "text": "Cat!"}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    m = Manifest.from_jsonl(p, label_names="map")
    assert [(it.label, it.text) for it in m] == [(1, "dog"), (0, "Cat!")]


def _write_wav(path: Path, n: int, sr: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(sr)
        wf.writeframes(np.zeros(n, "<i2").tobytes())


def test_audio_duration_and_with_durations(tmp_path):
    import soundfile as sf

    _write_wav(tmp_path / "a.wav", 8000)
    sf.write(tmp_path / "b.flac", np.zeros(24000, np.float32), 16000)
    sf.write(tmp_path / "c.wav", np.zeros((4410, 2), np.float32), 44100, subtype="FLOAT")
    assert audio_duration(tmp_path / "a.wav") == 0.5
    assert audio_duration(tmp_path / "b.flac") == 1.5
    assert audio_duration(tmp_path / "c.wav") == pytest.approx(0.1)
    with pytest.raises(ManifestError, match="nope.wav"):
        audio_duration(tmp_path / "nope.wav")
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    with pytest.raises(ManifestError, match="bad.wav"):
        audio_duration(tmp_path / "bad.wav")
    m = Manifest([Item("a", str(tmp_path / "a.wav")), Item("b", str(tmp_path / "b.flac"), duration=9.0)])
    m.with_durations()
    assert list(m.durations) == [0.5, 9.0]
    m.check_files()
    with pytest.raises(ManifestError, match="item 'z'"):
        Manifest([Item("z", str(tmp_path / "z.wav"))]).check_files()


def test_audio_duration_reads_headers_with_soundfile(tmp_path):
    from speechret.audio import AudioError

    (tmp_path / "empty.flac").write_bytes(b"")
    with pytest.raises(ManifestError, match=r"empty\.flac: empty file") as err:
        audio_duration(tmp_path / "empty.flac")
    assert isinstance(err.value.__cause__, AudioError)
    (tmp_path / "x.ogg").write_bytes(b"OggS")
    with pytest.raises(ManifestError, match=r"x\.ogg: unsupported audio format"):
        audio_duration(tmp_path / "x.ogg")
