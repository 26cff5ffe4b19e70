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
    contain the three lines or a single line pointing at the ``data/`` transcript
    (:mod:`speechret.data.mandarin_corpora`).
``aishell3``
    AISHELL-3: ``root/{train,test}/wav/SSBxxxx/*.wav`` + ``root/{train,test}/content.txt``
    (:mod:`speechret.data.mandarin_corpora`).
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
label, which is what retrieval relevance needs (papers A/B: a hit is relevant iff same content;
:mod:`speechret.data.layout`).  Durations are read from the audio headers
(:func:`~speechret.data.manifest.audio_duration`, ``soundfile.info``, about 0.1 ms per file).

The kind names are the ``corpus`` key of ``conf/data/*.yaml`` (and of the data config stored in
every checkpoint); :func:`corpus_kind` validates one and raises
:class:`~speechret.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from speechret.errors import ConfigError

from .layout import AUDIO_EXTENSIONS, fill_durations, resolve_missing
from .mandarin_corpora import load_aishell3, load_thchs30
from .manifest import (
    Item,
    Manifest,
    ManifestError,
    audio_duration,
    items_from_records,
    read_csv_records,
    read_jsonl_records,
)
from .synthetic import generate_corpus, load_synthetic

__all__ = [
    "AUDIO_EXTENSIONS",
    "CORPUS_KINDS",
    "corpus_kind",
    "load_corpus",
    "load_dspspeech20",
    "load_thchs30",
    "load_aishell3",
    "load_pattern_folder",
    "load_manifest_file",
    "pattern_to_regex",
]


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
    items = resolve_missing(items, str(man), missing)
    if with_durations:
        fill_durations(items)
    return Manifest(items, root=root_p)



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
                raise ConfigError(
                    f"pattern: unknown field {{{name}}} in pattern {pattern!r}; known: "
                    f"{', '.join(sorted(_KNOWN_FIELDS))} (prefix with _ to ignore a part)"
                )
            if name in used:
                raise ConfigError(f"pattern: field {{{name}}} appears twice in pattern {pattern!r}")
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
    skipped (with a warning), or raise when ``strict``.  An unreadable audio file is kept with an
    unknown duration and named in a warning (the indexer then reports and skips it, exactly as for
    a manifest), rather than aborting the load.

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
        _fill_durations_or_warn(items, base)
    return Manifest(items, root=base)


def _fill_durations_or_warn(items: list[Item], base: Path) -> None:
    """Durations from the headers; a file whose header cannot be read keeps duration 0 (unknown)
    and is named in one warning, so that -- as on the manifest route -- the file reaches the
    indexer, which reports and skips it, instead of one bad file aborting the whole folder."""
    bad: list[str] = []
    for i, it in enumerate(items):
        if it.duration > 0:
            continue
        try:
            items[i] = it.replace(duration=audio_duration(it.path))
        except ManifestError as exc:
            bad.append(str(exc))
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        warnings.warn(f"{base}: {len(bad)} unreadable audio file(s), kept for the indexer to report: "
                      f"{bad[0]}{more}", stacklevel=3)


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
        items = resolve_missing(items, p, missing)
    if with_durations:
        fill_durations(items)
    return Manifest(items, root=os.path.dirname(p))


# --------------------------------------------------------------------------------------------
# dispatcher
# --------------------------------------------------------------------------------------------


#: corpus kind → loader ``(root, **kw) -> Manifest``
CORPUS_KINDS: dict[str, Callable[..., Manifest]] = {
    "dspspeech20": load_dspspeech20,
    "thchs30": load_thchs30,
    "aishell3": load_aishell3,
    "folder": load_pattern_folder,
    "manifest": load_manifest_file,
    "synthetic": load_synthetic,
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


def _norm(kind: str) -> str:
    return re.sub(r"[-_\s]", "", str(kind).lower())


def corpus_kind(kind: str, key: str = "corpus") -> str:
    """The canonical name of a corpus kind (case, ``-``, ``_`` and spaces ignored; aliases such
    as ``dsp``, ``pattern``, ``csv``, ``espeak`` accepted).

    Raises:
        ConfigError: unknown kind; the message names ``key`` (e.g. ``data.corpus``).
    """
    by_norm = {_norm(k): k for k in CORPUS_KINDS} | {_norm(k): v for k, v in _KIND_ALIASES.items()}
    name = by_norm.get(_norm(kind))
    if name is None:
        raise ConfigError(f"{key}: unknown corpus kind {kind!r}; choose one of {', '.join(CORPUS_KINDS)}")
    return name


def load_corpus(kind: str, root: str | os.PathLike[str], **kw: Any) -> Manifest:
    """Load a corpus by kind: ``dspspeech20``, ``thchs30``, ``aishell3``, ``folder``,
    ``manifest``, ``synthetic`` (case and ``-``/``_`` insensitive: ``DSPSpeech-20`` works).

    ``root`` is the corpus folder (the manifest file for ``manifest``; the output folder for
    ``synthetic``, generated when absent); ``kw`` go to the loader.
    """
    return CORPUS_KINDS[corpus_kind(kind)](root, **kw)


def prepare_corpus(kind: str, root: str | os.PathLike[str], kwargs: Mapping[str, Any] | None = None) -> None:
    """Make a corpus ready to load: the built-in ``synthetic`` one is generated in ``root`` with
    ``kwargs`` (the generator's arguments; idempotent); every other kind is read as it is."""
    if corpus_kind(kind) == "synthetic":
        generate_corpus(root, **(kwargs or {}))


def corpus_manifest(kind: str, root: str | os.PathLike[str], kwargs: Mapping[str, Any] | None = None) -> Manifest:
    """:func:`load_corpus` of a data config's ``corpus`` / ``root`` / ``corpus_kwargs``: for
    ``synthetic`` the kwargs are the generator's (:func:`prepare_corpus`), not the loader's."""
    synthetic = corpus_kind(kind) == "synthetic"
    return load_corpus(kind, root, **({} if synthetic else dict(kwargs or {})))
