"""Corpus layouts → :class:`~speechret.data.manifest.Manifest`.

Supported layouts (``load_corpus(kind, root, **kw)``):

``dspspeech20``
    DSPSpeech-20 (the isolated-word corpus of the three papers' Chinese experiments, and the
    shared real data of this project): ``root/manifest.csv`` with columns
    ``path,speaker,word_id,text,pinyin,language,repetition``; 24 speakers × 20 words × 8
    repetitions, 16 kHz FLAC.  label = ``word_id``.
``thchs30``
    THCHS-30: ``root/data/*.wav`` + ``*.wav.trn`` (line 1 text, line 2 tone-numbered pinyin,
    line 3 phones); ``root/{train,dev,test}/`` hold per-split ``.wav.trn`` files that either
    contain the three lines or a single line pointing at the ``data/`` transcript.
``aishell3``
    AISHELL-3: ``root/{train,test}/wav/SSBxxxx/*.wav`` + ``root/{train,test}/content.txt``.
``folder``
    any folder of audio files whose names follow a pattern such as
    ``{label}_{speaker}_{index}.wav`` (see :func:`load_pattern_folder`).
``manifest``
    a CSV / TSV / JSONL manifest with the :class:`~speechret.data.manifest.Item` columns
    (only ``path`` required).
``synthetic``
    the built-in espeak-ng Mandarin corpus, generated on first use
    (:func:`speechret.data.synthetic.generate_corpus`); without keyword arguments an existing
    generated corpus in ``root`` is loaded whatever its parameters.

Labels for sentence corpora (THCHS-30, AISHELL-3) are content classes too: the index of the
utterance's distinct text in sorted (Unicode code point) order of all distinct texts of the
whole corpus (all splits, before ``split=`` selection, so labels agree between a train and a
test load), whitespace ignored; recordings of the same prompt by different speakers share a
label, which is what retrieval relevance needs (papers A/B: a hit is relevant iff same content).
Durations are read from the audio headers (:func:`~speechret.data.manifest.audio_duration`,
about 10 µs per FLAC/WAV file).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .manifest import (
    Item,
    Manifest,
    ManifestError,
    audio_duration,
    items_from_records,
    read_csv_records,
    read_jsonl_records,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "CORPUS_KINDS",
    "load_corpus",
    "load_dspspeech20",
    "load_thchs30",
    "load_aishell3",
    "load_pattern_folder",
    "load_manifest_file",
]

AUDIO_EXTENSIONS: tuple[str, ...] = ("wav", "flac", "mp3")


def _fill_durations(items: list[Item]) -> None:
    for i, it in enumerate(items):
        if it.duration <= 0:
            items[i] = it.replace(duration=audio_duration(it.path))


def _alternative_audio(path: str) -> str | None:
    """Same stem with another audio extension (``x.flac`` missing → ``x.wav``), if it exists."""
    stem, ext = os.path.splitext(path)
    for e in AUDIO_EXTENSIONS:
        if "." + e == ext.lower():
            continue
        for cand in (f"{stem}.{e}", f"{stem}.{e.upper()}"):
            if os.path.isfile(cand):
                return cand
    return None


def _resolve_missing(items: list[Item], source: str, missing: str) -> list[Item]:
    """Swap missing files for same-stem alternatives; then error / skip the rest."""
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', not {missing!r}")
    out: list[Item] = []
    lost: list[Item] = []
    for it in items:
        if os.path.isfile(it.path):
            out.append(it)
            continue
        alt = _alternative_audio(it.path)
        if alt is not None:
            out.append(it.replace(path=alt))
        else:
            lost.append(it)
    if lost:
        if missing == "error":
            more = f" (and {len(lost) - 1} more)" if len(lost) > 1 else ""
            raise ManifestError(
                f"{source}: audio file of item {lost[0].id!r} not found: {lost[0].path}{more}"
                " (pass missing='skip' to leave such items out)"
            )
        warnings.warn(f"{source}: {len(lost)} listed audio files not found, skipped", stacklevel=3)
    return out


def _text_key(text: str) -> str:
    return "".join(text.split())


def _labels_from_text(items: list[Item]) -> list[Item]:
    keys = sorted({_text_key(it.text) for it in items})
    index = {k: i for i, k in enumerate(keys)}
    return [it.replace(label=index[_text_key(it.text)]) for it in items]


# --------------------------------------------------------------------------------------------
# DSPSpeech-20
# --------------------------------------------------------------------------------------------


def load_dspspeech20(
    root: str | os.PathLike[str],
    *,
    with_durations: bool = True,
    missing: str = "error",
    manifest_name: str = "manifest.csv",
) -> Manifest:
    """DSPSpeech-20: ``root/manifest.csv`` (``path,speaker,word_id,text,pinyin,language,repetition``).

    ``id`` is the file stem (``15307110252-00-01``), ``label`` the ``word_id`` (0..19; 0..11 are
    the Mandarin words with pinyin, 12..19 English), ``split`` is left empty (the DataModule
    assigns it, e.g. by speaker or by repetition).  A listed ``.flac`` that is missing is replaced
    by the same-stem ``.wav`` (and vice versa) when that exists, so a WAV copy of the corpus
    loads with the same manifest.

    Args:
        with_durations: read each file's duration from its header (≈0.05 s for the 3,840 files).
        missing: ``"error"`` (default) or ``"skip"`` for listed files that do not exist.
    """
    root_p = Path(root)
    man = root_p / manifest_name
    if not man.is_file():
        raise ManifestError(f"{man}: DSPSpeech-20 manifest not found (is {root_p} the corpus root?)")
    columns, records = read_csv_records(man)
    lower = {c.lower() for c in columns}
    need = {"path", "speaker", "word_id"}
    if not need <= lower and not ({"path", "speaker", "label"} <= lower):
        raise ManifestError(
            f"{man}: not a DSPSpeech-20 manifest, missing columns {sorted(need - lower)} "
            f"(found: {', '.join(columns)})"
        )
    items = items_from_records(records, source=str(man), root=root_p, columns=columns)
    items = _resolve_missing(items, str(man), missing)
    if with_durations:
        _fill_durations(items)
    return Manifest(items, root=root_p)


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
        raise ValueError(f"THCHS-30 splits are {_THCHS_SPLITS}, not {sorted(splits_wanted)}")

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
    items = _labels_from_text(items)  # over the whole corpus: stable across split selections
    if splits_wanted is not None:
        items = [it for it in items if it.split in splits_wanted]
    items = _resolve_missing(items, str(base), missing)
    if with_durations:
        _fill_durations(items)
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
        raise ValueError(f"AISHELL-3 splits are {_AISHELL_SPLITS}, not {sorted(wanted)}")
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
    items = _labels_from_text(items)  # over both splits: stable across split selections
    if wanted is not None:
        items = [it for it in items if it.split in wanted]
    items = _resolve_missing(items, str(base), missing)
    if with_durations:
        _fill_durations(items)
    return Manifest(items, root=base)


# --------------------------------------------------------------------------------------------
# pattern folder
# --------------------------------------------------------------------------------------------

_FIELD_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KNOWN_FIELDS = {"label", "speaker", "index", "text", "repetition", "language", "split", "id"}


def pattern_to_regex(pattern: str, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> re.Pattern[str]:
    """Compile a filename pattern such as ``{label}_{speaker}_{index}.wav`` to a regex.

    Fields: ``label``, ``speaker``, ``text``, ``language``, ``split``, ``id`` (any characters but
    ``/``, shortest match), ``index``/``repetition`` (digits); a field whose name starts with
    ``_`` matches anything and is ignored.  Other text is literal.  The pattern is matched against
    the file's path relative to the root (so ``{speaker}/{label}_{index}.wav`` works); a trailing
    audio extension in the pattern stands for any of ``extensions``.
    """
    exts = [e.lower().lstrip(".") for e in extensions]
    body = pattern.replace("\\", "/")
    low = body.lower()
    for e in sorted(set(AUDIO_EXTENSIONS) | set(exts), key=len, reverse=True):
        if low.endswith("." + e):
            body = body[: -(len(e) + 1)]
            break
    parts: list[str] = []
    pos = 0
    used: set[str] = set()
    for m in _FIELD_RE.finditer(body):
        parts.append(re.escape(body[pos : m.start()]))
        name = m.group(1)
        if name.startswith("_"):
            parts.append(r"[^/]*?")
        else:
            if name not in _KNOWN_FIELDS:
                raise ValueError(
                    f"unknown field {{{name}}} in pattern {pattern!r}; known: "
                    f"{', '.join(sorted(_KNOWN_FIELDS))} (prefix with _ to ignore a part)"
                )
            if name in used:
                raise ValueError(f"field {{{name}}} appears twice in pattern {pattern!r}")
            used.add(name)
            sub = r"\d+" if name in ("index", "repetition") else r"[^/]+?"
            parts.append(f"(?P<{name}>{sub})")
        pos = m.end()
    parts.append(re.escape(body[pos:]))
    ext_alt = "|".join(re.escape(e) for e in exts)
    return re.compile("^" + "".join(parts) + r"\.(?:" + ext_alt + ")$", re.IGNORECASE)


def load_pattern_folder(
    root: str | os.PathLike[str],
    pattern: str = "{label}_{speaker}_{index}.wav",
    recursive: bool = True,
    *,
    extensions: Iterable[str] = AUDIO_EXTENSIONS,
    language: str = "",
    with_durations: bool = True,
    strict: bool = False,
) -> Manifest:
    """A folder of audio files whose relative paths follow ``pattern`` (see :func:`pattern_to_regex`).

    ``label`` is used as an integer when every value is one; otherwise the distinct names are
    sorted and numbered ``0..K-1`` and the name becomes ``text`` (unless the pattern has a
    ``{text}`` field).  ``index`` (or ``repetition``) fills ``repetition``.  ``id`` is the
    relative path without extension unless the pattern has ``{id}``.  Files that do not match are
    skipped (with a warning), or raise when ``strict``.

    Raises:
        ManifestError: ``root`` does not exist or no file matches.
    """
    base = Path(root)
    if not base.is_dir():
        raise ManifestError(f"{base}: folder not found")
    exts = tuple(e.lower().lstrip(".") for e in extensions)
    rx = pattern_to_regex(pattern, exts)
    walker = base.rglob("*") if recursive else base.glob("*")
    files = sorted(p for p in walker if p.is_file() and p.suffix.lower().lstrip(".") in exts)
    rows: list[tuple[Path, dict[str, str]]] = []
    unmatched: list[str] = []
    for f in files:
        rel = f.relative_to(base).as_posix()
        m = rx.match(rel) or (None if "/" in pattern else rx.match(f.name))
        if m is None:
            unmatched.append(rel)
            continue
        rows.append((f, {k: v for k, v in m.groupdict().items() if v is not None}))
    if unmatched:
        msg = f"{base}: {len(unmatched)} audio files do not match pattern {pattern!r} (e.g. {unmatched[0]})"
        if strict:
            raise ManifestError(msg)
        warnings.warn(msg + ", skipped", stacklevel=2)
    if not rows:
        raise ManifestError(f"{base}: no audio file ({'/'.join(exts)}) matches pattern {pattern!r}")

    raw_labels = [g["label"] for _, g in rows if "label" in g]
    numeric = all(v.isdigit() for v in raw_labels)
    label_map = None if numeric else {v: i for i, v in enumerate(sorted(set(raw_labels)))}
    items: list[Item] = []
    ids: dict[str, str] = {}
    for f, g in rows:
        rel = f.relative_to(base).as_posix()
        iid = g.get("id") or os.path.splitext(rel)[0]
        if iid in ids:
            raise ManifestError(f"{f}: id {iid!r} already used by {ids[iid]}")
        ids[iid] = rel
        label = -1
        text = g.get("text", "")
        if "label" in g:
            if label_map is None:
                label = int(g["label"])
            else:
                label = label_map[g["label"]]
                text = text or g["label"]
        rep = g.get("repetition", g.get("index"))
        items.append(
            Item(
                id=iid,
                path=os.path.abspath(f),
                speaker=g.get("speaker", ""),
                label=label,
                text=text,
                language=g.get("language", language),
                split=g.get("split", ""),
                repetition=int(rep) if rep is not None else -1,
            )
        )
    if with_durations:
        _fill_durations(items)
    return Manifest(items, root=base)


# --------------------------------------------------------------------------------------------
# generic manifest files
# --------------------------------------------------------------------------------------------


def load_manifest_file(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    with_durations: bool = False,
    check_files: bool = True,
    missing: str = "error",
) -> Manifest:
    """A CSV / TSV / JSONL manifest with :class:`~speechret.data.manifest.Item` columns.

    Only ``path`` is required (relative to ``root``, default the manifest's folder); aliases are
    accepted (``file``→``path``, ``word_id``/``class``→``label``, ``speaker_id``→``speaker``, see
    :data:`~speechret.data.manifest.COLUMN_ALIASES`).  Labels given as names (``"dog"``) are
    numbered in sorted order and the name is used as ``text`` when the row has none.

    Args:
        with_durations: fill unknown durations from the audio headers.
        check_files: verify every audio file exists (a missing ``.flac`` may be replaced by the
            same-stem ``.wav``, see ``missing``).
    """
    p = os.path.abspath(os.fspath(path))
    if not os.path.isfile(p):
        raise ManifestError(f"{p}: manifest file not found")
    base = os.fspath(root) if root is not None else os.path.dirname(p)
    if p.lower().endswith((".jsonl", ".json", ".ndjson")):
        items = items_from_records(read_jsonl_records(p), source=p, root=base, label_names="map")
    else:
        columns, records = read_csv_records(p)
        items = items_from_records(records, source=p, root=base, columns=columns, label_names="map")
    if check_files:
        items = _resolve_missing(items, p, missing)
    if with_durations:
        _fill_durations(items)
    return Manifest(items, root=os.path.dirname(p))


# --------------------------------------------------------------------------------------------
# dispatcher
# --------------------------------------------------------------------------------------------


def _load_synthetic(root: str | os.PathLike[str], **kw: Any) -> Manifest:
    """Without generation parameters an existing synthetic corpus in ``root`` is loaded as it
    is (whatever parameters made it); otherwise :func:`generate_corpus` (idempotent) runs."""
    from .synthetic import PARAMS_FILE, generate_corpus

    man = Path(root) / "manifest.csv"
    if not kw and man.is_file() and (Path(root) / PARAMS_FILE).is_file():
        m = Manifest.from_csv(man)
        m.check_files()
        return m
    return generate_corpus(root, **kw)


CORPUS_KINDS: dict[str, Any] = {
    "dspspeech20": load_dspspeech20,
    "thchs30": load_thchs30,
    "aishell3": load_aishell3,
    "folder": load_pattern_folder,
    "manifest": load_manifest_file,
    "synthetic": _load_synthetic,
}
_KIND_ALIASES = {
    "dsp": "dspspeech20",
    "dspspeech": "dspspeech20",
    "thchs": "thchs30",
    "aishell": "aishell3",
    "pattern": "folder",
    "pattern_folder": "folder",
    "csv": "manifest",
    "jsonl": "manifest",
    "espeak": "synthetic",
}


def load_corpus(kind: str, root: str | os.PathLike[str], **kw: Any) -> Manifest:
    """Load a corpus by kind: ``dspspeech20``, ``thchs30``, ``aishell3``, ``folder``,
    ``manifest``, ``synthetic`` (case and ``-``/``_`` insensitive: ``DSPSpeech-20`` works).

    ``root`` is the corpus folder (the manifest file for ``manifest``; the output folder for
    ``synthetic``, generated when absent); ``kw`` go to the loader.
    """
    key = re.sub(r"[-_\s]", "", str(kind).lower())
    norm = {re.sub(r"[-_\s]", "", k): k for k in CORPUS_KINDS}
    norm.update({re.sub(r"[-_\s]", "", k): v for k, v in _KIND_ALIASES.items()})
    if key not in norm:
        raise ValueError(f"unknown corpus kind {kind!r}; choose one of {', '.join(CORPUS_KINDS)}")
    return CORPUS_KINDS[norm[key]](root, **kw)
