"""Manifest files → :class:`~speechret.data.item.Item` records: CSV / TSV / JSONL reading and row
parsing with errors that name the file and row.

Only ``path`` is required; the other fields default to "unknown" (see
:class:`~speechret.data.item.Item`).  A few common aliases are accepted (``file``/``wav``/
``audio`` → ``path``, ``word_id``/``class``/``label_id`` → ``label``, ``speaker_id``/``spk`` →
``speaker``, ..., :data:`COLUMN_ALIASES`).  Any problem is reported as a
:class:`~speechret.data.item.ManifestError` that names the file and the row (line number).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .item import FIELDS, Item, ManifestError

__all__ = ["COLUMN_ALIASES", "items_from_records", "read_csv_records", "read_jsonl_records"]

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

