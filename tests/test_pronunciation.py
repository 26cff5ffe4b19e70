"""Paper C §3.3 / §4.2: the 27-class initial/vowel pronunciation model."""

from __future__ import annotations

import pytest

from speechret.data.pronunciation import (
    CLASSES,
    NUM_CLASSES,
    OTHER,
    initial_of,
    is_pinyin_syllable,
    labels_to_names,
    normalize_syllable,
    pinyin_to_labels,
    text_to_labels,
    text_to_pinyin,
)


def test_classes_match_the_paper():
    assert len(CLASSES) == NUM_CLASSES == 27
    assert CLASSES[:21] == "b p m f d t n l g k h j q x zh ch sh r z c s".split()
    assert CLASSES[21:26] == ["y", "w", "a", "o", "e"]
    assert CLASSES[26] == "other" and OTHER == 26


@pytest.mark.parametrize(
    "text,expected",
    [
        ("北京", ["b", "j"]),
        ("中国", ["zh", "g"]),
        ("语音", ["y", "y"]),
        ("阿", ["a"]),
        ("饿", ["e"]),
        ("偶", ["o"]),
        ("我", ["w"]),
        ("上海", ["sh", "h"]),
        ("数字", ["sh", "z"]),
        ("识别", ["sh", "b"]),
        ("儿", ["e"]),
        ("吃饭", ["ch", "f"]),
        ("热水", ["r", "sh"]),
        ("词典", ["c", "d"]),
        ("请问", ["q", "w"]),
        ("学校", ["x", "x"]),
    ],
)
def test_text_to_labels(text, expected):
    assert labels_to_names(text_to_labels(text)) == expected


def test_pinyin_to_labels_example():
    assert pinyin_to_labels("bei3 jing1") == [0, 11]
    assert pinyin_to_labels(["bei3", "jing1"]) == [0, 11]
    assert pinyin_to_labels("  zhong1   guo2 ") == [CLASSES.index("zh"), CLASSES.index("g")]


@pytest.mark.parametrize(
    "syl,ini",
    [
        ("zhong1", "zh"), ("zhōng", "zh"), ("ZHONG", "zh"), ("zi4", "z"), ("ci2", "c"), ("si1", "s"),
        ("chi1", "ch"), ("shi4", "sh"), ("ri4", "r"),
        ("yu3", "y"), ("yue4", "y"), ("wu3", "w"), ("wo3", "w"),
        ("a1", "a"), ("ai4", "a"), ("an1", "a"), ("ang2", "a"), ("ao4", "a"),
        ("o1", "o"), ("ou3", "o"), ("e4", "e"), ("ei4", "e"), ("en1", "e"), ("er2", "e"), ("ê1", "e"),
        ("lv4", "l"), ("lü4", "l"), ("nu:3", "n"), ("nǚ", "n"),
        ("v3", "y"), ("ü", "y"), ("i1", "y"), ("u4", "w"),  # non-customary zero-initial spellings
        ("ng2", "n"), ("m2", "m"), ("hm5", "h"),
    ],
)  # fmt: skip
def test_initial_of(syl, ini):
    assert initial_of(syl) == ini


def test_normalize_and_validity():
    assert normalize_syllable("Lü4") == "lv"
    assert normalize_syllable("nǚ") == "nv"
    assert is_pinyin_syllable("bei3") and is_pinyin_syllable("zhuang4") and is_pinyin_syllable("lve4")
    assert not is_pinyin_syllable("speech") and not is_pinyin_syllable("123") and not is_pinyin_syllable("")


def test_non_pinyin_tokens_are_other_or_errors():
    assert pinyin_to_labels("bei3 speech 3 jing1") == [0, OTHER, OTHER, 11]
    with pytest.raises(ValueError, match="speech"):
        pinyin_to_labels("bei3 speech", strict=True)
    with pytest.raises(ValueError):
        initial_of("")
    with pytest.raises(ValueError):
        initial_of("123")


def test_text_to_pinyin_and_non_chinese():
    assert text_to_pinyin("北京") == "bei3 jing1"
    assert text_to_pinyin("你们好吗") == "ni3 men5 hao3 ma5"  # neutral tone written 5
    assert text_to_pinyin("绿色") == "lv4 se4"
    assert text_to_pinyin("银行") == "yin2 hang2"
    assert text_to_pinyin("我爱DSP，北京!") == "wo3 ai4 bei3 jing1"
    assert text_to_pinyin("我爱DSP", non_chinese="keep") == "wo3 ai4 dsp"
    assert text_to_labels("我爱DSP，北京!") == [CLASSES.index("w"), CLASSES.index("a"), 0, 11]
    assert text_to_labels("我爱DSP，北京!", non_chinese="other") == [
        CLASSES.index("w"), CLASSES.index("a"), OTHER, 0, 11,
    ]  # fmt: skip
    assert text_to_labels("") == [] and text_to_labels("hello") == []


def test_text_and_pinyin_agree_on_builtin_vocabulary():
    from speechret.data.synthetic import DEFAULT_SENTENCES, DEFAULT_WORDS

    covered = set()
    for text, py in DEFAULT_WORDS + DEFAULT_SENTENCES:
        assert text_to_labels(text) == pinyin_to_labels(py), text
        covered.update(pinyin_to_labels(py))
    assert covered == set(range(26))  # the built-in corpus exercises every pronunciation class
