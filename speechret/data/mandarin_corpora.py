"""Read-Mandarin sentence corpora with transcripts: THCHS-30 and AISHELL-3 (paper C §5.1).

Both give ``text`` (characters) and tone-numbered ``pinyin`` per utterance, from which paper C's
27-class CTC targets are derived (:mod:`speechret.data.pronunciation`); content labels are the
distinct texts over the whole corpus (:func:`~speechret.data.layout.labels_from_text`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from speechret.errors import ConfigError

from .item import Item, ManifestError
from .layout import fill_durations, labels_from_text, resolve_missing
from .manifest import Manifest

__all__ = ["load_thchs30", "load_aishell3"]

# --------------------------------------------------------------------------------------------
# THCHS-30
# --------------------------------------------------------------------------------------------

_THCHS_SPLITS = ("train", "dev", "test")


def _read_trn(trn: Path, root: Path, depth: int = 0) -> tuple[str, str, str]:
    """(text, pinyin, phones) of a THCHS-30 transcript, following one-line pointer files."""
    try:
        lines = [ln.strip() for ln in trn.read_text(encoding="utf-8-sig").splitlines()]
    except UnicodeDecodeError:
        try:
            lines = [ln.strip() for ln in trn.read_text(encoding="gb18030").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{trn}: cannot read transcript ({exc})") from exc
    except OSError as exc:
        raise ManifestError(f"{trn}: cannot read transcript ({exc})") from exc
    lines = [ln for ln in lines if ln]
    if len(lines) == 1 and lines[0].endswith(".trn"):
        if depth > 2:
            raise ManifestError(f"{trn}: transcript pointer chain too deep")
        target = Path(lines[0])
        cands = [target] if target.is_absolute() else [trn.parent / target]
        cands.append(root / "data" / target.name)
        for c in cands:
            if c.is_file():
                return _read_trn(c, root, depth + 1)
        raise ManifestError(f"{trn}: points to {lines[0]} which does not exist")
    if len(lines) < 2:
        raise ManifestError(
            f"{trn}: expected 3 lines (text, pinyin, phones) or 1 line naming the data/ transcript, "
            f"found {len(lines)}"
        )
    text = " ".join(lines[0].split())
    pinyin = " ".join(lines[1].lower().split())
    phones = " ".join(lines[2].split()) if len(lines) > 2 else ""
    return text, pinyin, phones


def _thchs_root(root: Path) -> Path:
    if (root / "data").is_dir() or any((root / s).is_dir() for s in _THCHS_SPLITS):
        return root
    nested = root / "data_thchs30"
    if nested.is_dir():
        return nested
    raise ManifestError(
        f"{root}: not a THCHS-30 root (expected data/ with *.wav + *.wav.trn, or train/ dev/ test/)"
    )


def load_thchs30(
    root: str | os.PathLike[str],
    split: str | Iterable[str] | None = None,
    *,
    with_durations: bool = True,
    missing: str = "error",
) -> Manifest:
    """THCHS-30 (Tsinghua, 30 h of read Mandarin, 16 kHz).

    Layouts: ``root/data/A11_0.wav`` + ``root/data/A11_0.wav.trn`` (3 lines: words of text
    separated by spaces, tone-numbered pinyin, phones); the split folders ``root/{train,dev,test}``
    hold ``.wav.trn`` files that either repeat the 3 lines or contain a single line pointing at
    the ``data/`` transcript (as in the released corpus), and optionally the wavs.  ``root`` may
    also be the parent of ``data_thchs30/``.

    Fields: ``id`` = stem (``A11_0``), ``speaker`` = the part before ``_`` (``A11``),
    ``text`` = line 1 (word spacing kept), ``pinyin`` = line 2, ``language`` = ``zh``,
    ``split`` = the split folder listing the utterance ("" when there are no split folders),
    ``label`` = index of the distinct text (spaces ignored) in sorted order over the whole
    corpus, all splits (see the module docstring).

    Args:
        split: keep only these split(s) (``"train"``, ``"dev"``, ``"test"``).
    """
    base = _thchs_root(Path(root))
    splits_wanted = {split} if isinstance(split, str) else (set(split) if split is not None else None)
    if splits_wanted is not None and not splits_wanted <= set(_THCHS_SPLITS):
        raise ConfigError(f"split: THCHS-30 splits are {_THCHS_SPLITS}, not {sorted(splits_wanted)}")

    # which split each stem belongs to
    split_of: dict[str, str] = {}
    split_trn: dict[str, Path] = {}
    for s in _THCHS_SPLITS:
        d = base / s
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            name = f.name
            if name.endswith(".wav.trn"):
                stem = name[: -len(".wav.trn")]
            elif name.lower().endswith(".wav"):
                stem = name[:-4]
            else:
                continue
            split_of.setdefault(stem, s)
            if name.endswith(".trn"):
                split_trn.setdefault(stem, f)

    # utterances: data/ first, then anything only present in split folders
    utts: dict[str, tuple[Path, Path | None]] = {}  # stem -> (wav, trn)
    data = base / "data"
    if data.is_dir():
        for f in sorted(data.iterdir()):
            if f.name.lower().endswith(".wav"):
                trn = f.with_name(f.name + ".trn")
                utts[f.name[:-4]] = (f, trn if trn.is_file() else None)
    for stem, s in split_of.items():
        if stem in utts:
            if utts[stem][1] is None and stem in split_trn:
                utts[stem] = (utts[stem][0], split_trn[stem])
            continue
        wav = base / s / f"{stem}.wav"
        if not wav.is_file():
            wav = data / f"{stem}.wav"
        utts[stem] = (wav, split_trn.get(stem))
    if not utts:
        raise ManifestError(f"{base}: no THCHS-30 utterances found (*.wav with *.wav.trn)")

    items: list[Item] = []
    for stem in sorted(utts):
        wav, trn = utts[stem]
        s = split_of.get(stem, "")
        if trn is None:
            raise ManifestError(f"{wav}: no transcript ({wav.name}.trn) found")
        text, pinyin, _phones = _read_trn(trn, base)
        speaker = stem.split("_", 1)[0] if "_" in stem else stem
        items.append(
            Item(
                id=stem,
                path=os.path.abspath(wav),
                speaker=speaker,
                text=text,
                pinyin=pinyin,
                language="zh",
                split=s,
            )
        )
    items = labels_from_text(items)  # over the whole corpus: stable across split selections
    if splits_wanted is not None:
        items = [it for it in items if it.split in splits_wanted]
    items = resolve_missing(items, str(base), missing)
    if with_durations:
        fill_durations(items)
    return Manifest(items, root=base)


# --------------------------------------------------------------------------------------------
# AISHELL-3
# --------------------------------------------------------------------------------------------

_AISHELL_SPLITS = ("train", "test")
_SSB_RE = re.compile(r"^(SSB\d{4})", re.IGNORECASE)
_PINYIN_TOKEN_RE = re.compile(r"^[a-zü:v]+[1-5]$", re.IGNORECASE)


def _parse_aishell_line(line: str, where: str) -> tuple[str, str, str]:
    """``SSB00050001.wav 广 guang3 州 zhou1 ...`` → (filename, text, pinyin)."""
    toks = line.split()
    if len(toks) < 3:
        raise ManifestError(f"{where}: expected 'FILE.wav char pinyin char pinyin ...', got {line!r}")
    fname, rest = toks[0], toks[1:]
    chars: list[str] = []
    pys: list[str] = []
    if len(rest) % 2 == 0 and all(_PINYIN_TOKEN_RE.match(p) for p in rest[1::2]):
        chars = rest[0::2]
        pys = [p.lower() for p in rest[1::2]]
    else:  # tolerate stray prosody marks / unpaired tokens: pair greedily
        i = 0
        while i < len(rest):
            if i + 1 < len(rest) and _PINYIN_TOKEN_RE.match(rest[i + 1]) and not _PINYIN_TOKEN_RE.match(rest[i]):
                chars.append(rest[i])
                pys.append(rest[i + 1].lower())
                i += 2
            elif _PINYIN_TOKEN_RE.match(rest[i]):
                raise ManifestError(f"{where}: pinyin {rest[i]!r} without a character before it")
            else:
                i += 1  # a lone mark such as '%' or '$'
        if not chars:
            raise ManifestError(f"{where}: no character/pinyin pairs in {line!r}")
    return fname, "".join(chars), " ".join(pys)


def load_aishell3(
    root: str | os.PathLike[str],
    split: str | Iterable[str] | None = None,
    *,
    with_durations: bool = True,
    missing: str = "error",
) -> Manifest:
    """AISHELL-3 (218 speakers of Mandarin, 44.1 kHz in the release; resampled on load).

    Layout: ``root/{train,test}/content.txt`` with lines
    ``SSB00050001.wav<TAB>广 guang3 州 zhou1 ...`` (character / tone-numbered pinyin pairs), and
    the audio in ``root/{split}/wav/SSBxxxx/SSBxxxx####.wav``.

    Fields: ``id`` = file stem, ``speaker`` = ``SSBxxxx``, ``text`` = the characters joined,
    ``pinyin`` = the pinyins joined by spaces, ``split`` = ``train``/``test``, ``language`` =
    ``zh``, ``label`` = index of the distinct text (sorted) over both splits.
    """
    base = Path(root)
    wanted = {split} if isinstance(split, str) else (set(split) if split is not None else None)
    if wanted is not None and not wanted <= set(_AISHELL_SPLITS):
        raise ConfigError(f"split: AISHELL-3 splits are {_AISHELL_SPLITS}, not {sorted(wanted)}")
    present = [s for s in _AISHELL_SPLITS if (base / s / "content.txt").is_file()]
    if not present:
        raise ManifestError(f"{base}: not an AISHELL-3 root (no train/content.txt or test/content.txt)")
    if wanted is not None and not wanted & set(present):
        raise ManifestError(f"{base}: split(s) {sorted(wanted)} not present (no {sorted(wanted)[0]}/content.txt)")
    items: list[Item] = []
    seen: dict[str, str] = {}
    for s in present:
        content = base / s / "content.txt"
        try:
            lines = content.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{content}: cannot read ({exc})") from exc
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{content} row {n}"
            fname, text, pinyin = _parse_aishell_line(line, where)
            stem = os.path.splitext(fname)[0]
            m = _SSB_RE.match(stem)
            speaker = m.group(1).upper() if m else stem[:-4]
            if stem in seen:
                raise ManifestError(f"{where}: duplicate utterance {stem!r} (also in {seen[stem]})")
            seen[stem] = where
            wav = base / s / "wav" / speaker / fname
            if not os.path.splitext(fname)[1]:
                wav = wav.with_name(fname + ".wav")
            items.append(
                Item(
                    id=stem,
                    path=os.path.abspath(wav),
                    speaker=speaker,
                    text=text,
                    pinyin=pinyin,
                    language="zh",
                    split=s,
                )
            )
    items = labels_from_text(items)  # over both splits: stable across split selections
    if wanted is not None:
        items = [it for it in items if it.split in wanted]
    items = resolve_missing(items, str(base), missing)
    if with_durations:
        fill_durations(items)
    return Manifest(items, root=base)
