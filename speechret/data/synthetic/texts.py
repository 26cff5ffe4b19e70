"""Content classes of the synthetic corpus: the words and sentences it speaks.

The first 12 :data:`DEFAULT_WORDS` are the Mandarin words of DSPSpeech-20 (the isolated-word
corpus of papers A and B, in its ``word_id`` order 0-11); the next 25 common words cover all 26
pronunciation classes of paper C §3.3.  :data:`DEFAULT_SENTENCES` are 23 short sentences that
contain those words, for CTC training and keyword query-by-example (paper C §4.4).  Each entry is
``(text, tone-numbered pinyin)``; ``ü`` is written ``v`` by :func:`espeak_text` (``lv4``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from speechret.data.pronunciation import text_to_pinyin

__all__ = ["DSPSPEECH20_WORDS", "DEFAULT_WORDS", "DEFAULT_SENTENCES", "as_entries", "espeak_text"]

#: (text, tone-numbered pinyin); the first 12 are DSPSpeech-20's Mandarin words, word_id 0..11.
DSPSPEECH20_WORDS: list[tuple[str, str]] = [
    ("数字", "shu4 zi4"),
    ("语音", "yu3 yin1"),
    ("语言", "yu3 yan2"),
    ("识别", "shi2 bie2"),
    ("中国", "zhong1 guo2"),
    ("总工", "zong3 gong1"),
    ("北京", "bei3 jing1"),
    ("背景", "bei4 jing3"),
    ("上海", "shang4 hai3"),
    ("商行", "shang1 hang2"),
    ("复旦", "fu4 dan4"),
    ("饭店", "fan4 dian4"),
]
DEFAULT_WORDS: list[tuple[str, str]] = DSPSPEECH20_WORDS + [
    ("你好", "ni3 hao3"),
    ("谢谢", "xie4 xie4"),
    ("再见", "zai4 jian4"),
    ("朋友", "peng2 you3"),
    ("明天", "ming2 tian1"),
    ("老师", "lao3 shi1"),
    ("开门", "kai1 men2"),
    ("请问", "qing3 wen4"),
    ("学校", "xue2 xiao4"),
    ("吃饭", "chi1 fan4"),
    ("热水", "re4 shui3"),
    ("词典", "ci2 dian3"),
    ("安全", "an1 quan2"),
    ("欧洲", "ou1 zhou1"),
    ("儿童", "er2 tong2"),
    ("文件", "wen2 jian4"),
    ("电脑", "dian4 nao3"),
    ("天气", "tian1 qi4"),
    ("时间", "shi2 jian1"),
    ("医院", "yi1 yuan4"),
    ("火车", "huo3 che1"),
    ("飞机", "fei1 ji1"),
    ("音乐", "yin1 yue4"),
    ("银行", "yin2 hang2"),
    ("思考", "si1 kao3"),
]
DEFAULT_SENTENCES: list[tuple[str, str]] = [
    ("我在北京学习语音识别", "wo3 zai4 bei3 jing1 xue2 xi2 yu3 yin1 shi2 bie2"),
    ("上海的天气很好", "shang4 hai3 de5 tian1 qi4 hen3 hao3"),
    ("明天我们去复旦大学", "ming2 tian1 wo3 men5 qu4 fu4 dan4 da4 xue2"),
    ("请问饭店在哪里", "qing3 wen4 fan4 dian4 zai4 na3 li3"),
    ("老师说数字很重要", "lao3 shi1 shuo1 shu4 zi4 hen3 zhong4 yao4"),
    ("中国有很多银行", "zhong1 guo2 you3 hen3 duo1 yin2 hang2"),
    ("你好我是你的朋友", "ni3 hao3 wo3 shi4 ni3 de5 peng2 you3"),
    ("他坐火车去上海", "ta1 zuo4 huo3 che1 qu4 shang4 hai3"),
    ("今天的音乐很好听", "jin1 tian1 de5 yin1 yue4 hen3 hao3 ting1"),
    ("我们在医院门口见面", "wo3 men5 zai4 yi1 yuan4 men2 kou3 jian4 mian4"),
    ("请打开电脑的文件", "qing3 da3 kai1 dian4 nao3 de5 wen2 jian4"),
    ("她在商行工作", "ta1 zai4 shang1 hang2 gong1 zuo4"),
    ("背景声音太大了", "bei4 jing3 sheng1 yin1 tai4 da4 le5"),
    ("吃饭的时间到了", "chi1 fan4 de5 shi2 jian1 dao4 le5"),
    ("语言是人类的工具", "yu3 yan2 shi4 ren2 lei4 de5 gong1 ju4"),
    ("欧洲的儿童喜欢音乐", "ou1 zhou1 de5 er2 tong2 xi3 huan1 yin1 yue4"),
    ("飞机明天早上起飞", "fei1 ji1 ming2 tian1 zao3 shang4 qi3 fei1"),
    ("谢谢你的帮助再见", "xie4 xie4 ni3 de5 bang1 zhu4 zai4 jian4"),
    ("总工在学校开会", "zong3 gong1 zai4 xue2 xiao4 kai1 hui4"),
    ("热水在厨房里", "re4 shui3 zai4 chu2 fang2 li3"),
    ("词典放在桌子上", "ci2 dian3 fang4 zai4 zhuo1 zi5 shang4"),
    ("安全第一", "an1 quan2 di4 yi1"),
    ("我们一起思考这个问题", "wo3 men5 yi4 qi3 si1 kao3 zhe4 ge5 wen4 ti2"),
]


def espeak_text(pinyin: str) -> str:
    """Pinyin as espeak's ``cmn-latn-pinyin`` wants it: lower case, ü → v, one space between."""
    s = pinyin.lower().replace("ü", "v").replace("u:", "v")
    return " ".join(s.split())


def as_entries(
    entries: Iterable[str | tuple[str, str] | Sequence[str]] | None, default: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """``(text, pinyin)`` pairs from Chinese strings (pinyin from pypinyin) or pairs; ``default``
    when ``entries`` is ``None``.  Raises ``ValueError`` for a text without Chinese characters or
    a duplicate text (each text is one content class)."""
    if entries is None:
        return list(default)
    out: list[tuple[str, str]] = []
    for e in entries:
        if isinstance(e, str):
            py = text_to_pinyin(e)
            if not py:
                raise ValueError(f"{e!r} has no Chinese characters to read; give (text, pinyin) pairs")
            out.append((e, py))
        else:
            text, py = e[0], e[1]
            out.append((str(text), " ".join(str(py).split())))
    seen: set[str] = set()
    for text, _ in out:
        if text in seen:
            raise ValueError(f"duplicate entry {text!r}: each text is one content class")
        seen.add(text)
    return out
