"""bench/paper_c_words.py's account of what paper C's codes can be asked on DSPSpeech-20's words
(issue 13): which words share a CTC target, and the mAP of a code that is exactly its target."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from speechret.data.corpora import load_corpus
from speechret.data.dataset import pronunciation_targets
from speechret.data.item import Item

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import paper_c_words  # noqa: E402


def _item(speaker: str, label: int, pinyin: str, rep: int = 1) -> Item:
    return Item(id=f"{speaker}-{label}-{rep}", path=f"/x/{speaker}-{label}-{rep}.flac", speaker=speaker, label=label,
                text="", pinyin=pinyin, language="zh", repetition=rep)


@pytest.mark.realdata
def test_the_four_pairs_of_dspspeech20_share_their_paper_c_target(dspspeech20_root):
    corpus = load_corpus("dspspeech20", dspspeech20_root)
    groups = paper_c_words.target_groups(corpus, paper_c_words.MANDARIN_12)
    assert sorted(w for g in groups for w in g) == paper_c_words.MANDARIN_12
    # 语音/语言, 北京/背景, 上海/商行, 复旦/饭店: only the syllables' initials are classes (§3.3)
    assert [g for g in groups if len(g) > 1] == [[1, 2], [6, 7], [8, 9], [10, 11]]
    target = {it.label: tuple(pronunciation_targets(it)) for it in corpus if it.label in paper_c_words.MANDARIN_12}
    for g in groups:
        assert len({target[w] for w in g}) == 1
    assert len({target[g[0]] for g in groups}) == len(groups)


def test_oracle_map_ties_a_pair_and_is_one_without_one():
    # two speakers, words 0 and 1 with the same target (b j), word 2 another (sh z): a query of
    # word 0 meets, in the other speaker, its word (relevant) and the partner (tied at 0) first:
    # AP = (1 + 1/2) / 2 in random order, in expectation; word 2's queries are perfect
    items = [_item(s, w, p) for s in ("a", "b") for w, p in ((0, "bei3 jing1"), (1, "bei4 jing3"), (2, "shu4 zi4"))]
    groups = paper_c_words.target_groups(items, [0, 1, 2])
    assert groups == [[0, 1], [2]]
    assert paper_c_words.oracle_map(items, ["a", "b"], groups) == pytest.approx((4 * 0.75 + 2 * 1.0) / 6)
    assert paper_c_words.oracle_map(items, ["a", "b"], [[0], [1], [2]]) == 1.0
    # the pair alone: every query ties its word with the partner's
    assert paper_c_words.oracle_map(items, ["a", "b"], [[0, 1]]) == pytest.approx(0.75)


def test_target_groups_refuses_a_word_with_two_targets():
    items = [_item("a", 0, "bei3 jing1"), _item("b", 0, "shu4 zi4")]
    with pytest.raises(ValueError, match="word 0"):
        paper_c_words.target_groups(items, [0])
