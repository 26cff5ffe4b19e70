"""Corpus manifests: one :class:`Item` per recording, a :class:`Manifest` per corpus.

Every corpus layout (``corpora.py``) and the synthetic generator (``synthetic.py``) produce a
:class:`Manifest`; the DataModule, the library indexer and the evaluation protocols consume one.
A manifest is the only place where the *content class* of a recording is defined, which is what
the supervised deep-hashing models of papers A (000, §3: softmax over content classes) and B (001,
§3.2: category layer / category hash ``h1``) are trained on, and where the Mandarin text and
tone-numbered pinyin live from which paper C (002, §3.3, §4.2) derives its 27-class CTC targets
(see ``pronunciation.py``).

On-disk formats (both lossless, both round-trip through :meth:`Manifest.to_csv` /
:meth:`Manifest.from_csv` and :meth:`Manifest.to_jsonl` / :meth:`Manifest.from_jsonl`):

* CSV (UTF-8, header row, one row per item, columns = :data:`FIELDS`);
* JSONL (UTF-8, one JSON object per line with the same keys).

``path`` may be absolute or relative to the manifest file's directory (or to an explicit
``root``); it is always absolute in memory.  When writing, paths under the manifest's directory are
written relative to it so that a corpus folder can be moved as a whole.

Only ``path`` is required when reading; the other fields default to "unknown" (see :class:`Item`).
A few common aliases are accepted (``file``/``wav``/``audio`` → ``path``, ``word_id``/``class``/
``label_id`` → ``label``, ``speaker_id``/``spk`` → ``speaker``, ...).  Any problem is reported as a
:class:`ManifestError` that names the file and the row (line number).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, overload

import numpy as np

from speechret.errors import SpeechretError

__all__ = [
    "FIELDS",
    "COLUMN_ALIASES",
    "Item",
    "Manifest",
    "ManifestError",
    "audio_duration",
    "items_from_records",
    "read_csv_records",
    "read_jsonl_records",
]


class ManifestError(SpeechretError, ValueError):
    """A manifest (or corpus layout) is malformed; the message names the file and row."""


@dataclass(slots=True)
class Item:
    """One recording.

    Attributes:
        id: unique identifier within the manifest (by default the file stem).
        path: absolute path of the audio file (relative paths are resolved on load).
        speaker: speaker identifier ("" when unknown).
        label: content class, ``0..K-1`` (``-1`` when unknown).  Recordings of the same word /
            sentence share a label: this is the retrieval ground truth (a hit is relevant iff it
            has the query's label) and the softmax target of papers A and B.
        text: transcript (Chinese characters for Mandarin, words otherwise).
        pinyin: tone-numbered pinyin, syllables separated by single spaces (``"bei3 jing1"``);
            "" for non-Mandarin items.  Source of the paper-C CTC targets.
        language: ISO 639-1 code (``"zh"``, ``"en"``, ...) or "".
        duration: seconds (``0.0`` when unknown).
        split: ``"train"``/``"val"``/``"test"``/... or "" when unassigned.
        repetition: index of the repetition of the same content by the same speaker (``-1``
            when unknown); DSPSpeech-20 numbers them 1..8.
    """

    id: str
    path: str
    speaker: str = ""
    label: int = -1
    text: str = ""
    pinyin: str = ""
    language: str = ""
    duration: float = 0.0
    split: str = ""
    repetition: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in FIELDS}

    def replace(self, **changes: Any) -> Item:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Item))
_INT_FIELDS = {"label", "repetition"}
_FLOAT_FIELDS = {"duration"}

#: column name (lower case) → Item field.  Applied when a column is not itself a field name.
COLUMN_ALIASES: dict[str, str] = {
    "file": "path",
    "filename": "path",
    "file_path": "path",
    "filepath": "path",
    "wav": "path",
    "wav_path": "path",
    "audio": "path",
    "audio_path": "path",
    "word_id": "label",
    "class": "label",
    "class_id": "label",
    "label_id": "label",
    "target": "label",
    "speaker_id": "speaker",
    "spk": "speaker",
    "spk_id": "speaker",
    "transcript": "text",
    "transcription": "text",
    "sentence": "text",
    "word": "text",
    "lang": "language",
    "rep": "repetition",
    "take": "repetition",
    "utt_id": "id",
    "utterance_id": "id",
    "key": "id",
}


# --------------------------------------------------------------------------------------------
# fast audio durations
# --------------------------------------------------------------------------------------------


def _flac_duration(head: bytes) -> float | None:
    # "fLaC" + metadata block header (4 bytes) + STREAMINFO (34 bytes); sample rate: 20 bits,
    # channels 3, bits/sample 5, total samples 36 (RFC 9639 §8.2).
    if len(head) < 42 or head[:4] != b"fLaC" or (head[4] & 0x7F) != 0:
        return None
    x = int.from_bytes(head[18:26], "big")
    sr = x >> 44
    n = x & ((1 << 36) - 1)
    if sr <= 0 or n <= 0:  # total samples 0 = unknown
        return None
    return n / sr


def _wav_duration(fh: io.BufferedReader, head: bytes) -> float | None:
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    fh.seek(12)
    byte_rate = 0
    for _ in range(64):  # walk the chunks until "data"
        hdr = fh.read(8)
        if len(hdr) < 8:
            return None
        cid, size = hdr[:4], int.from_bytes(hdr[4:], "little")
        if cid == b"fmt ":
            fmt = fh.read(size)
            if len(fmt) < 16:
                return None
            byte_rate = int.from_bytes(fmt[8:12], "little")
            if size % 2:
                fh.seek(1, os.SEEK_CUR)
        elif cid == b"data":
            if byte_rate <= 0 or size in (0, 0xFFFFFFFF):  # streaming writers leave 0 / -1
                return None
            return size / byte_rate
        else:
            fh.seek(size + (size % 2), os.SEEK_CUR)
    return None


def audio_duration(path: str | os.PathLike[str]) -> float:
    """Duration of an audio file in seconds, from its header.

    FLAC (STREAMINFO) and PCM WAV headers are parsed directly (tens of microseconds per file,
    so that a corpus of thousands of files gets its durations in well under a second); anything
    else (MP3, WAV with odd headers, ...) goes through ``soundfile.info``.

    Raises:
        ManifestError: the file is missing or unreadable (the message names it).
    """
    p = os.fspath(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(64)
            d = _flac_duration(head)
            if d is None:
                d = _wav_duration(fh, head)
    except OSError as exc:
        raise ManifestError(f"{p}: cannot read audio file ({exc.strerror or exc})") from exc
    if d is not None:
        return d
    try:
        import soundfile as sf

        info = sf.info(p)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError
        raise ManifestError(f"{p}: cannot read audio header ({exc})") from exc
    if info.samplerate <= 0:
        raise ManifestError(f"{p}: audio header has sample rate {info.samplerate}")
    return info.frames / info.samplerate


# --------------------------------------------------------------------------------------------
# row parsing
# --------------------------------------------------------------------------------------------


def _canonical_columns(columns: Iterable[str], source: str, aliases: bool) -> dict[str, str]:
    """Map raw column name → Item field (unknown columns are ignored)."""
    out: dict[str, str] = {}
    taken: dict[str, str] = {}
    cols = [c for c in columns if c is not None]
    exact = {c.strip().lower() for c in cols} & set(FIELDS)
    for col in cols:
        key = col.strip().lower()
        if key in FIELDS:
            field = key
        elif aliases and key in COLUMN_ALIASES and COLUMN_ALIASES[key] not in exact:
            field = COLUMN_ALIASES[key]
        else:
            continue
        if field in taken:
            raise ManifestError(
                f"{source}: columns {taken[field]!r} and {col!r} both map to field {field!r}"
            )
        taken[field] = col
        out[col] = field
    return out


def _parse_int(value: Any, field: str, where: str) -> int:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return -1
    if isinstance(value, bool):
        raise ManifestError(f"{where}: {field} {value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ManifestError(f"{where}: {field} {value!r} is not an integer")
    s = str(value).strip()
    try:
        return int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            f = math.nan
        if math.isfinite(f) and f.is_integer():
            return int(f)
        raise ManifestError(f"{where}: {field} {value!r} is not an integer") from None


def _parse_float(value: Any, field: str, where: str) -> float:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return 0.0
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: {field} {value!r} is not a number") from None
    if not math.isfinite(f) or f < 0:
        raise ManifestError(f"{where}: {field} {value!r} must be a finite number >= 0")
    return f


def _parse_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return str(value).strip()


def _resolve_path(raw: str, root: str) -> str:
    p = os.path.expanduser(raw)
    if not os.path.isabs(p):
        p = os.path.join(root, p)
    return os.path.abspath(p)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def items_from_records(
    records: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    source: str,
    root: str | os.PathLike[str],
    columns: Iterable[str] | None = None,
    aliases: bool = True,
    label_names: str = "error",
) -> list[Item]:
    """Convert raw records ``(line_number, {column: value})`` to Items.

    Args:
        source: file name used in error messages.
        root: directory against which relative paths are resolved.
        columns: the column names (CSV header); taken from the records when ``None``.
        aliases: accept :data:`COLUMN_ALIASES`.
        label_names: what to do when the ``label`` column holds names instead of integers:
            ``"error"`` (raise :class:`ManifestError` naming the row) or ``"map"`` (map the
            distinct names, sorted, to ``0..K-1``, and use the name as ``text`` when the item
            has none).
    """
    records = list(records)
    root = os.path.abspath(os.fspath(root))
    if columns is None:
        seen: dict[str, None] = {}
        for _, rec in records:
            for k in rec:
                seen.setdefault(k, None)
        columns = list(seen)
    colmap = _canonical_columns(columns, source, aliases)
    if "path" not in colmap.values():
        raise ManifestError(
            f"{source}: missing required column 'path' (columns found: {', '.join(columns) or 'none'};"
            f" accepted: {', '.join(FIELDS)} or aliases {', '.join(k for k, v in COLUMN_ALIASES.items() if v == 'path')})"
        )

    label_map: dict[str, int] | None = None
    if label_names == "map":
        raw_labels = []
        for _, rec in records:
            for col, field in colmap.items():
                if field == "label":
                    v = rec.get(col)
                    if v is not None and str(v).strip() != "":
                        raw_labels.append(str(v).strip())
        non_int = [v for v in raw_labels if not _looks_int(v)]
        if non_int:
            label_map = {name: i for i, name in enumerate(sorted(set(raw_labels)))}
    elif label_names != "error":
        raise ValueError(f"label_names must be 'error' or 'map', not {label_names!r}")

    items: list[Item] = []
    ids: dict[str, int] = {}
    for line, rec in records:
        where = f"{source} row {line}"
        vals: dict[str, Any] = {}
        for col, field in colmap.items():
            vals[field] = rec.get(col)
        raw_path = _parse_str(vals.get("path"))
        if not raw_path:
            raise ManifestError(f"{where}: empty 'path'")
        path = _resolve_path(raw_path, root)
        kw: dict[str, Any] = {"path": path}
        for field in FIELDS:
            if field == "path" or field not in vals:
                continue
            v = vals[field]
            if field == "label" and label_map is not None:
                s = _parse_str(v)
                kw["label"] = label_map[s] if s else -1
            elif field in _INT_FIELDS:
                kw[field] = _parse_int(v, field, where)
            elif field in _FLOAT_FIELDS:
                kw[field] = _parse_float(v, field, where)
            else:
                kw[field] = _parse_str(v)
        if label_map is not None and not kw.get("text"):
            kw["text"] = _parse_str(vals.get("label"))
        if not kw.get("id"):
            kw["id"] = _stem(path)
        if kw.get("label", -1) < -1:
            raise ManifestError(f"{where}: label {kw['label']} must be >= 0 (or -1 for unknown)")
        if kw.get("pinyin"):
            kw["pinyin"] = " ".join(kw["pinyin"].split())
        item = Item(**kw)
        if item.id in ids:
            raise ManifestError(
                f"{where}: duplicate id {item.id!r} (first at row {ids[item.id]}); ids must be unique"
            )
        ids[item.id] = line
        items.append(item)
    return items


def _looks_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False


def read_csv_records(path: str | os.PathLike[str]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Read a CSV (or TSV, by extension / sniffing) into ``(columns, [(line, row), ...])``."""
    p = os.fspath(path)
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ManifestError(f"{p}: manifest file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{p}: cannot read manifest ({exc})") from exc
    if not text.strip():
        raise ManifestError(f"{p}: manifest is empty (no header row)")
    first = text.split("\n", 1)[0]
    delim = "\t" if (p.lower().endswith(".tsv") or ("\t" in first and "," not in first)) else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delim)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = columns
    records: list[tuple[int, dict[str, str]]] = []
    try:
        for row in reader:
            line = reader.line_num
            if None in row:  # more cells than header columns
                raise ManifestError(
                    f"{p} row {line}: {len(columns) + len(row[None])} cells but the header has {len(columns)} columns"
                )
            if all((v is None or v.strip() == "") for v in row.values()):
                continue  # blank line
            records.append((line, row))
    except csv.Error as exc:
        raise ManifestError(f"{p} row {reader.line_num}: malformed CSV ({exc})") from exc
    return columns, records


def read_jsonl_records(path: str | os.PathLike[str]) -> list[tuple[int, dict[str, Any]]]:
    """Read a JSON-lines file into ``[(line, object), ...]`` (blank lines skipped)."""
    p = os.fspath(path)
    records: list[tuple[int, dict[str, Any]]] = []
    try:
        fh = open(p, encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"{p}: manifest file not found") from None
    except OSError as exc:
        raise ManifestError(f"{p}: cannot read manifest ({exc})") from exc
    with fh:
        try:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{p} row {line_no}: invalid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise ManifestError(
                        f"{p} row {line_no}: expected a JSON object, got {type(obj).__name__}"
                    )
                records.append((line_no, obj))
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{p}: not UTF-8 ({exc})") from exc
    return records


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


class Manifest(Sequence[Item]):
    """An ordered collection of :class:`Item` (list-like: ``len``, indexing, slicing, iteration).

    Slicing and :meth:`filter` return new manifests that share the (mutable) Item objects;
    :meth:`relabel` replaces Items by copies, so relabelling a filtered manifest never changes
    the one it came from.

    Args:
        items: the items.
        root: directory the manifest was read from (used to write relative paths); optional.
    """

    def __init__(self, items: Iterable[Item] = (), root: str | os.PathLike[str] | None = None):
        self.items: list[Item] = list(items)
        for i, it in enumerate(self.items):
            if not isinstance(it, Item):
                raise TypeError(f"Manifest item {i} is a {type(it).__name__}, not an Item")
        self.root: str | None = os.path.abspath(os.fspath(root)) if root is not None else None

    # -- sequence protocol ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> Item: ...

    @overload
    def __getitem__(self, index: slice) -> Manifest: ...

    def __getitem__(self, index: int | slice) -> Item | Manifest:
        if isinstance(index, slice):
            return Manifest(self.items[index], root=self.root)
        return self.items[index]

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return self.items == other.items

    def __add__(self, other: Manifest) -> Manifest:
        if not isinstance(other, Manifest):
            return NotImplemented
        return Manifest(self.items + other.items, root=self.root)

    def __repr__(self) -> str:
        return (
            f"Manifest({len(self)} items, {len(self.speakers)} speakers, "
            f"{len(self.labels)} labels{', root=' + repr(self.root) if self.root else ''})"
        )

    def append(self, item: Item) -> None:
        if not isinstance(item, Item):
            raise TypeError(f"expected an Item, got {type(item).__name__}")
        self.items.append(item)

    def extend(self, items: Iterable[Item]) -> None:
        for it in items:
            self.append(it)

    def select(self, indices: Iterable[int]) -> Manifest:
        """The items at ``indices`` (in that order)."""
        return Manifest([self.items[i] for i in indices], root=self.root)

    def by_id(self) -> dict[str, Item]:
        return {it.id: it for it in self.items}

    # -- views -----------------------------------------------------------------------------
    @property
    def speakers(self) -> list[str]:
        """Distinct speakers, sorted."""
        return sorted({it.speaker for it in self.items})

    @property
    def labels(self) -> list[int]:
        """Distinct labels, sorted (``-1`` included when some items are unlabelled)."""
        return sorted({it.label for it in self.items})

    @property
    def languages(self) -> list[str]:
        return sorted({it.language for it in self.items})

    @property
    def splits(self) -> list[str]:
        return sorted({it.split for it in self.items})

    @property
    def label_names(self) -> dict[int, str]:
        """label → text (the most frequent non-empty text of that label; "" if none)."""
        texts: dict[int, Counter[str]] = {}
        for it in self.items:
            c = texts.setdefault(it.label, Counter())
            if it.text:
                c[it.text] += 1
        out: dict[int, str] = {}
        for lab in sorted(texts):
            c = texts[lab]
            # most_common is stable on ties w.r.t. first insertion: deterministic
            out[lab] = c.most_common(1)[0][0] if c else ""
        return out

    @property
    def durations(self) -> np.ndarray:
        """Durations in seconds (float64, one per item, 0 where unknown)."""
        return np.fromiter((it.duration for it in self.items), dtype=np.float64, count=len(self))

    @property
    def paths(self) -> list[str]:
        return [it.path for it in self.items]

    def label_counts(self) -> dict[int, int]:
        return dict(sorted(Counter(it.label for it in self.items).items()))

    def summary(self) -> dict[str, Any]:
        """Counts and duration statistics (over items whose duration is known)."""
        d = self.durations
        known = d[d > 0]
        return {
            "items": len(self),
            "speakers": len(self.speakers),
            "labels": len([lab for lab in self.labels if lab >= 0]),
            "languages": dict(sorted(Counter(it.language for it in self.items).items())),
            "splits": dict(sorted(Counter(it.split for it in self.items).items())),
            "total_duration": float(known.sum()) if known.size else 0.0,
            "min_duration": float(known.min()) if known.size else 0.0,
            "max_duration": float(known.max()) if known.size else 0.0,
            "mean_duration": float(known.mean()) if known.size else 0.0,
            "unknown_durations": int((d <= 0).sum()),
            "label_counts": self.label_counts(),
        }

    # -- transformations -------------------------------------------------------------------
    def filter(
        self,
        labels: Iterable[int] | int | None = None,
        languages: Iterable[str] | str | None = None,
        speakers: Iterable[str] | str | None = None,
        split: Iterable[str] | str | None = None,
        predicate: Callable[[Item], bool] | None = None,
    ) -> Manifest:
        """Items matching every given criterion (``None`` = no constraint).

        Each criterion is a single value or a collection of accepted values; ``predicate`` is an
        arbitrary extra test.  Labels are *not* renumbered: call :meth:`relabel` for contiguous
        labels (e.g. before training a softmax over the remaining classes).
        """

        def as_set(v: Any, typ: type) -> set | None:
            if v is None:
                return None
            if isinstance(v, typ) or (typ is int and isinstance(v, np.integer)):
                return {int(v)} if typ is int else {v}
            return set(v)

        lab = as_set(labels, int)
        lan = as_set(languages, str)
        spk = as_set(speakers, str)
        spl = as_set(split, str)
        out = [
            it
            for it in self.items
            if (lab is None or it.label in lab)
            and (lan is None or it.language in lan)
            and (spk is None or it.speaker in spk)
            and (spl is None or it.split in spl)
            and (predicate is None or predicate(it))
        ]
        return Manifest(out, root=self.root)

    def relabel(self, mapping: Mapping[int, int] | None = None) -> dict[int, int]:
        """Renumber labels in place to ``0..K-1`` (sorted order of the current labels).

        Items keep label ``-1`` (unknown).  Items are replaced by copies, so manifests sharing
        Item objects with this one (the one it was filtered from) are not affected.

        Args:
            mapping: an explicit ``old → new`` mapping instead of the sorted default (e.g. the
                mapping returned for the training manifest, applied to its test manifest);
                labels missing from it raise ``KeyError``.

        Returns:
            the ``old → new`` mapping used.
        """
        if mapping is None:
            mapping = {old: new for new, old in enumerate(lab for lab in self.labels if lab >= 0)}
        mapping = dict(mapping)
        new_items = []
        for it in self.items:
            if it.label < 0:
                new_items.append(it.replace())
                continue
            if it.label not in mapping:
                raise KeyError(f"label {it.label} of item {it.id!r} is not in the mapping")
            new_items.append(it.replace(label=int(mapping[it.label])))
        self.items = new_items
        return mapping

    def with_durations(self, *, overwrite: bool = False) -> Manifest:
        """Fill in durations from the audio headers (in place; returns ``self``)."""
        for i, it in enumerate(self.items):
            if overwrite or it.duration <= 0:
                self.items[i] = it.replace(duration=audio_duration(it.path))
        return self

    def check_files(self) -> None:
        """Raise :class:`ManifestError` naming the first item whose audio file does not exist."""
        missing = [it for it in self.items if not os.path.isfile(it.path)]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ManifestError(f"audio file of item {missing[0].id!r} not found: {missing[0].path}{more}")

    # -- I/O --------------------------------------------------------------------------------
    def _rows(self, dest_dir: str, relative: bool) -> Iterator[dict[str, Any]]:
        for it in self.items:
            d = it.to_dict()
            if relative:
                try:
                    rel = os.path.relpath(it.path, dest_dir)
                except ValueError:  # different drive on Windows
                    rel = it.path
                if not rel.startswith(os.pardir + os.sep) and rel != os.pardir:
                    d["path"] = Path(rel).as_posix()
            yield d

    def to_csv(self, path: str | os.PathLike[str], *, relative_paths: bool = True) -> Path:
        """Write a CSV manifest (columns :data:`FIELDS`); atomically (temp file + rename).

        Paths inside the manifest's directory are written relative to it (``relative_paths``).
        """
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        dest = os.path.abspath(p.parent)
        tmp = p.with_name(p.name + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(FIELDS), lineterminator="\n")
            w.writeheader()
            for d in self._rows(dest, relative_paths):
                d["duration"] = repr(float(d["duration"]))  # shortest lossless repr
                w.writerow(d)
        os.replace(tmp, p)
        return p

    def to_jsonl(self, path: str | os.PathLike[str], *, relative_paths: bool = True) -> Path:
        """Write a JSON-lines manifest (one object per item); atomically."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        dest = os.path.abspath(p.parent)
        tmp = p.with_name(p.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for d in self._rows(dest, relative_paths):
                fh.write(json.dumps(d, ensure_ascii=False) + "\n")
        os.replace(tmp, p)
        return p

    def save(self, path: str | os.PathLike[str], **kw: Any) -> Path:
        """Write CSV or JSONL according to the extension (``.jsonl``/``.json`` → JSONL)."""
        if str(path).lower().endswith((".jsonl", ".json", ".ndjson")):
            return self.to_jsonl(path, **kw)
        return self.to_csv(path, **kw)

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        root: str | os.PathLike[str] | None = None,
        *,
        aliases: bool = True,
        label_names: str = "error",
    ) -> Manifest:
        """Read a CSV manifest; relative paths are resolved against ``root`` (default: the CSV's
        directory).  See :func:`items_from_records` for ``aliases`` / ``label_names``."""
        p = os.path.abspath(os.fspath(path))
        columns, records = read_csv_records(p)
        base = os.fspath(root) if root is not None else os.path.dirname(p)
        items = items_from_records(
            records, source=p, root=base, columns=columns, aliases=aliases, label_names=label_names
        )
        return cls(items, root=os.path.dirname(p))

    @classmethod
    def from_jsonl(
        cls,
        path: str | os.PathLike[str],
        root: str | os.PathLike[str] | None = None,
        *,
        aliases: bool = True,
        label_names: str = "error",
    ) -> Manifest:
        """Read a JSON-lines manifest (see :meth:`from_csv`)."""
        p = os.path.abspath(os.fspath(path))
        records = read_jsonl_records(p)
        base = os.fspath(root) if root is not None else os.path.dirname(p)
        items = items_from_records(records, source=p, root=base, aliases=aliases, label_names=label_names)
        return cls(items, root=os.path.dirname(p))

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kw: Any) -> Manifest:
        """Read CSV/TSV or JSONL according to the extension."""
        if str(path).lower().endswith((".jsonl", ".json", ".ndjson")):
            return cls.from_jsonl(path, **kw)
        return cls.from_csv(path, **kw)
