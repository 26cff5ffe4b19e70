"""Corpus manifests: one :class:`Item` per recording, a :class:`Manifest` per corpus.

Every corpus layout (``corpora.py``) and the synthetic generator (``synthetic/``) produce a
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

Parts: :mod:`speechret.data.item` (:class:`Item`, :data:`FIELDS`, :class:`ManifestError`),
:mod:`speechret.data.records` (reading and parsing rows); all of them are re-exported here.
Durations come from the audio headers (:func:`audio_duration`, via
:func:`speechret.audio.audio_info`).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from speechret.audio import AudioError, audio_info

from .item import FIELDS, Item, ManifestError
from .records import COLUMN_ALIASES, items_from_records, read_csv_records, read_jsonl_records

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


def audio_duration(path: str | os.PathLike[str]) -> float:
    """Duration of an audio file in seconds, from its header (:func:`speechret.audio.audio_info`,
    i.e. ``soundfile.info``: no decoding, about 0.1 ms per file).

    Raises:
        ManifestError: the file is missing, empty, of an unsupported format or unreadable, or
            its header has no sample rate (the message names the file).
    """
    try:
        info = audio_info(path)
    except AudioError as exc:
        raise ManifestError(str(exc)) from exc
    if info.sample_rate <= 0:
        raise ManifestError(f"{info.path}: audio header has sample rate {info.sample_rate}")
    return info.duration


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
