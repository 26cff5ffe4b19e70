"""The 27-class Mandarin pronunciation model of paper C (002).

Paper C §3.3 ("Chinese Initial Consonant and Vowel Pronunciation Model") keeps, instead of the
1,000+ tonal syllables, only the *initial* of each syllable:

* the 21 standard initials ``b p m f d t n l g k h j q x zh ch sh r z c s``;
* the two "zero initials" of customary spelling ``y w`` (语 yu, 我 wo);
* the three vowels ``a o e`` for syllables written with no consonant at all (阿 a, 偶 ou, 饿 e);

26 pronunciation classes ("PM", §4.2), plus a 27th class for everything unrelated to a
pronounced word: silence, breath, background noise (``c_27`` in §4.2).  Here the classes are
0-based: labels are ``0..26`` and :data:`OTHER` ``= 26``.  **The CTC blank is not one of these
classes**: the model owns it (conventionally index 27, i.e. ``num_classes + 1`` outputs) and the
training targets produced here never contain it.

How a syllable maps to its class (:func:`initial_of`), decided from the *spelling*:

1. tone digits (``1``-``5``) and tone marks are removed; ``ü``, ``u:`` and ``v`` are the same
   letter (pypinyin writes ``lv4``/``nv3`` for 绿/女);
2. the longest matching standard initial wins (``zh``/``ch``/``sh`` before ``z``/``c``/``s``);
3. otherwise the syllable is zero-initial and maps by its first letter: ``y…`` → ``y``,
   ``w…`` → ``w``, ``a…`` → ``a``, ``o…`` → ``o``, ``e…`` (including ``er`` 儿 and ``ê``) →
   ``e``.  Non-standard spellings that drop the customary y/w are mapped to what the customary
   spelling would start with: ``i…`` and ``ü…``/``v…`` → ``y`` (i → yi, ü → yu), ``u…`` → ``w``
   (u → wu).
4. syllabic nasals follow their letter (嗯 ``n``/``ng`` → ``n``, 呣 ``m`` → ``m``, 噷 ``hm`` →
   ``h``), since "the pronunciation model ... should cover potential pronunciations" (§3.3);
5. anything else (digits, Latin words that are not pinyin, punctuation) is :data:`OTHER` in
   :func:`pinyin_to_labels`; :func:`initial_of` raises ``ValueError`` for it.

Text → pinyin uses pypinyin (``lazy_pinyin(text, style=Style.TONE3,
neutral_tone_with_five=True)``: tone-numbered, neutral tone written ``5`` so that every syllable
carries exactly one digit, e.g. 吗 → ``ma5``).  Tones are irrelevant to the class (the model is
meant to be robust to "tone, tempo and speaker", §3.3) but are kept in manifests because the
synthetic corpus (``synthetic/``) feeds them to espeak-ng.  Non-Chinese characters in *text*
are dropped by default (``non_chinese="drop"``): a CTC target should only hold pronounced Mandarin
initials; ``non_chinese="other"`` maps each non-Chinese run (a Latin word, a number) to one
:data:`OTHER` label instead.  Punctuation and whitespace are always dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = [
    "CLASSES",
    "NUM_CLASSES",
    "OTHER",
    "CLASS_TO_INDEX",
    "STANDARD_INITIALS",
    "initial_of",
    "is_pinyin_syllable",
    "normalize_syllable",
    "pinyin_to_labels",
    "text_to_pinyin",
    "text_to_labels",
    "labels_to_names",
]

#: The 27 classes of paper C §4.2, in the paper's order; index 26 is "other".
CLASSES: list[str] = [
    "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x",
    "zh", "ch", "sh", "r", "z", "c", "s",
    "y", "w", "a", "o", "e",
    "other",
]  # fmt: skip
NUM_CLASSES: int = len(CLASSES)  # 27 (the CTC blank is extra, owned by the model)
OTHER: int = CLASSES.index("other")  # 26
CLASS_TO_INDEX: dict[str, int] = {c: i for i, c in enumerate(CLASSES)}

#: The 21 standard initials, longest first so that zh/ch/sh win over z/c/s.
STANDARD_INITIALS: tuple[str, ...] = tuple(sorted(CLASSES[:21], key=len, reverse=True))

# Rimes allowed after an initial, used only to tell pinyin from arbitrary Latin words.
_FINALS = (
    "a ai an ang ao e ei en eng er o ong ou i ia ian iang iao ie in ing iong iu io "
    "u ua uai uan uang ue ui un uo v van ve vn ve ue"
).split()
_SYLLABIC = {"n", "ng", "m", "hm", "hng", "ê", "er"}
_TONE_MARKS = {
    "ā": "a", "á": "a", "ǎ": "a", "à": "a",
    "ē": "e", "é": "e", "ě": "e", "è": "e",
    "ī": "i", "í": "i", "ǐ": "i", "ì": "i",
    "ō": "o", "ó": "o", "ǒ": "o", "ò": "o",
    "ū": "u", "ú": "u", "ǔ": "u", "ù": "u",
    "ǖ": "v", "ǘ": "v", "ǚ": "v", "ǜ": "v", "ü": "v",
    "ḿ": "m", "ń": "n", "ň": "n", "ǹ": "n",
    "ế": "ê", "ề": "ê", "ê̄": "ê", "ê̌": "ê",
}  # fmt: skip
_SYL_RE = re.compile(r"^[a-zêv]+$")


@lru_cache(maxsize=4096)
def normalize_syllable(syllable: str) -> str:
    """Lower-case, tone digits and tone marks removed, ``ü``/``u:`` written ``v``.

    ``"Lü4"`` → ``"lv"``, ``"nǚ"`` → ``"nv"``, ``"bei3"`` → ``"bei"``.
    """
    s = unicodedata.normalize("NFC", syllable.strip().lower())
    s = s.replace("u:", "v")
    s = "".join(_TONE_MARKS.get(ch, ch) for ch in s)
    s = unicodedata.normalize("NFD", s)
    s = "".join(ch for ch in s if not unicodedata.combining(ch) or ch == "\u0302")
    s = unicodedata.normalize("NFC", s)
    return s.rstrip("012345")


def _split_initial(s: str) -> tuple[str, str]:
    for ini in STANDARD_INITIALS:
        if s.startswith(ini):
            return ini, s[len(ini) :]
    return "", s


def is_pinyin_syllable(syllable: str) -> bool:
    """Whether ``syllable`` is spelled like one (tone-numbered or plain) pinyin syllable."""
    s = normalize_syllable(syllable)
    if not s or not _SYL_RE.match(s):
        return False
    if s in _SYLLABIC:
        return True
    ini, rest = _split_initial(s)
    if not ini:
        if s[0] in "yw":
            rest = s[1:]
            # yi, yu, ya, yan, wu, wo, ...: the rime after y/w, with i/u restored
            return rest in _FINALS or ("i" + rest) in _FINALS or ("u" + rest) in _FINALS or rest == ""
        return s in _FINALS
    return rest in _FINALS


@lru_cache(maxsize=4096)
def initial_of(syllable: str) -> str:
    """The pronunciation class (one of :data:`CLASSES` except ``"other"``) of a syllable.

    Works on tone-numbered (``"zhong1"``), tone-marked (``"zhōng"``) and plain (``"zhong"``)
    spellings.  See the module docstring for the zero-initial rules (paper C §3.3).

    Raises:
        ValueError: ``syllable`` is empty or does not start with a pinyin letter.
    """
    s = normalize_syllable(syllable)
    if not s:
        raise ValueError(f"empty pinyin syllable {syllable!r}")
    ini, _ = _split_initial(s)
    if ini:
        return ini
    c = s[0]
    if c in "yw":
        return c
    if c in "aoe" or c == "ê":
        return "e" if c == "ê" else c
    if c in "iv":  # i -> yi, ü -> yu (customary spelling)
        return "y"
    if c == "u":  # u -> wu
        return "w"
    raise ValueError(f"{syllable!r} is not a pinyin syllable (cannot determine its initial)")


def _syllables(pinyin: str | Sequence[str]) -> list[str]:
    if isinstance(pinyin, str):
        return pinyin.split()
    out: list[str] = []
    for p in pinyin:
        out.extend(str(p).split())
    return out


def pinyin_to_labels(pinyin: str | Sequence[str], *, strict: bool = False) -> list[int]:
    """Class indices (0..26) of space-separated pinyin syllables.

    ``pinyin_to_labels("bei3 jing1") == [0, 11]``.  A token that is not a pinyin syllable (a
    digit, punctuation, an English word) becomes :data:`OTHER`, or raises ``ValueError`` when
    ``strict``.
    """
    labels: list[int] = []
    for tok in _syllables(pinyin):
        if is_pinyin_syllable(tok):
            labels.append(CLASS_TO_INDEX[initial_of(tok)])
        elif strict:
            raise ValueError(f"{tok!r} in {pinyin!r} is not a pinyin syllable")
        else:
            labels.append(OTHER)
    return labels


def _is_han(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2EBEF
        or 0xF900 <= cp <= 0xFAFF
        or cp == 0x3007  # 〇
    )


def _segments(text: str) -> list[tuple[bool, str]]:
    """Split text into runs: (True, han characters) / (False, a non-Chinese alphanumeric run).

    Punctuation and whitespace separate runs and are dropped.
    """
    out: list[tuple[bool, str]] = []
    buf: list[str] = []
    kind: bool | None = None
    for ch in text:
        if _is_han(ch):
            k: bool | None = True
        elif ch.isalnum():
            k = False
        else:
            k = None
        if k != kind or k is None:
            if buf and kind is not None:
                out.append((kind, "".join(buf)))
            buf = []
            kind = k
        if k is not None:
            buf.append(ch)
    if buf and kind is not None:
        out.append((kind, "".join(buf)))
    return out


def _pinyin_of_han(text: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore")


def text_to_pinyin(text: str, *, non_chinese: str = "drop") -> str:
    """Tone-numbered pinyin of a Chinese text, syllables separated by single spaces.

    ``text_to_pinyin("北京") == "bei3 jing1"``; neutral tone as ``5`` (``"ma5"``); ü as ``v``
    (``"lv4"``).  pypinyin resolves heteronyms from its phrase dictionary (银行 ``yin2 hang2``,
    重庆 ``chong2 qing4``).  Non-Chinese runs are dropped (``non_chinese="drop"``) or kept
    verbatim, lower-cased (``"keep"``).
    """
    if non_chinese not in ("drop", "keep", "other"):
        raise ValueError(f"non_chinese must be 'drop', 'keep' or 'other', not {non_chinese!r}")
    out: list[str] = []
    for is_han, seg in _segments(text):
        if is_han:
            # pypinyin segments phrases itself; pass the whole run for context
            out.extend(_pinyin_of_han(seg))
        elif non_chinese != "drop":
            out.append(seg.lower())
    return " ".join(out)


def text_to_labels(text: str, *, non_chinese: str = "drop") -> list[int]:
    """Class indices (0..26) of a Chinese text, one per character (paper C §3.3 / §4.2).

    ``text_to_labels("北京") == [0, 11]`` (b, j).  Non-Chinese runs are dropped
    (``non_chinese="drop"``, default) or become one :data:`OTHER` each (``"other"``).
    """
    if non_chinese not in ("drop", "other"):
        raise ValueError(f"non_chinese must be 'drop' or 'other', not {non_chinese!r}")
    labels: list[int] = []
    for is_han, seg in _segments(text):
        if is_han:
            for syl in _pinyin_of_han(seg):
                labels.append(CLASS_TO_INDEX[initial_of(syl)] if is_pinyin_syllable(syl) else OTHER)
        elif non_chinese == "other":
            labels.append(OTHER)
    return labels


def labels_to_names(labels: Iterable[int]) -> list[str]:
    """``[0, 11]`` → ``["b", "j"]``."""
    out = []
    for lab in labels:
        if not 0 <= int(lab) < NUM_CLASSES:
            raise ValueError(f"label {lab} outside 0..{NUM_CLASSES - 1}")
        out.append(CLASSES[int(lab)])
    return out
