"""A library's derived search state: generations of saved matchers.

``<lib>/index/hw<NNN>-<t>/`` holds the matchers covering the library's rows ``< NNN`` (the
high-water mark is in the directory name, so the saved state and its mark change together). Each
matcher is the one its hash method declares (:meth:`speechret.hashing.HashMethod.matcher_nodes`,
a Hydra node whose ``_target_`` names a :mod:`speechret.search` class) and saves itself at
``<generation>/<matcher name>``. A new generation is written atomically (temp dir, fsync,
rename, directory fsync), then the older ones are removed. Nothing here depends on which method
the library holds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import get_class

from speechret.fileio import fsync_dir
from speechret.hashing import HashMethod
from speechret.search.milvus import drop_unreferenced

INDEX_DIR = "index"
GENERATION_RE = re.compile(r"^hw(\d{12})-(\d+)$")


def _arguments(node: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k != "_target_"}


def item_count(matchers: Mapping[str, Any]) -> int:
    """Rows (library items) the matchers hold; every matcher must hold the same number."""
    counts = set()
    for m in matchers.values():
        if hasattr(m, "indexes"):  # one FAISS index per category (paper B two-stage)
            counts.add(sum(int(i.ntotal) for i in m.indexes.values()))
        elif hasattr(m, "__len__"):  # grouped sequences (paper C): items, not FAISS rows
            counts.add(len(m))
        else:
            counts.add(int(m.index.ntotal))
    if len(counts) > 1:
        raise ValueError(f"matchers hold different numbers of rows: {sorted(counts)}")
    return counts.pop() if counts else 0


class MatcherGenerations:
    """The saved matcher generations under ``<library>/index`` for one hash method and index
    configuration (``index_kind``: a FAISS binary factory string or family name, ``index_params``
    its runtime parameters, see :func:`speechret.search.index.build_binary_index`)."""

    def __init__(self, library_path: Path, hashing: HashMethod, index_kind: str, index_params: Mapping[str, Any]):
        self.root = Path(library_path) / INDEX_DIR
        self.hashing = hashing
        self.index_kind = index_kind
        self.index_params = dict(index_params)

    def nodes(self) -> dict[str, dict[str, Any]]:
        return self.hashing.matcher_nodes(self.index_kind, dict(self.index_params))

    def current(self) -> tuple[int, Path] | None:
        """``(high-water mark, directory)`` of the newest generation, or None."""
        best = None
        if not self.root.is_dir():
            return None
        for p in self.root.iterdir():
            m = GENERATION_RE.match(p.name)
            if m and p.is_dir():
                key = (int(m.group(1)), int(m.group(2)))
                if best is None or key > best[0]:
                    best = (key, p)
        return (best[0][0], best[1]) if best else None

    def new(self) -> dict[str, Any]:
        """The matchers the hash method declares, empty."""
        return {name: get_class(node["_target_"])(**_arguments(node)) for name, node in self.nodes().items()}

    @staticmethod
    def add(matchers: Mapping[str, Any], rows: np.ndarray, codes: Any) -> None:
        """Add stored codes (:meth:`HashMethod.decode_rows` form) under their row ids."""
        if len(rows) == 0:
            return
        for matcher in matchers.values():
            matcher.add(codes, rows)

    def save(self, matchers: Mapping[str, Any], high_water: int, count: int | None = None) -> Path:
        """Write a new generation atomically and remove the older ones; returns its directory.
        ``state.json`` records the high-water mark and the number of rows held (``count``), which
        the library checks against SQLite before it searches."""
        count = item_count(matchers) if count is None else int(count)
        self.root.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            for name, matcher in matchers.items():
                matcher.save(tmp / name)
            (tmp / "state.json").write_text(json.dumps({"high_water": high_water, "count": count,
                                                        "method": self.hashing.name,
                                                        "matchers": sorted(matchers)}))
            fsync_dir(tmp)
            final = self.root / f"hw{high_water:012d}-{time.time_ns()}"
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(self.root)
        for p in self.root.iterdir():  # old generations
            if p != final and GENERATION_RE.match(p.name):
                self._release(p, final)
                shutil.rmtree(p, ignore_errors=True)
        return final

    def _release(self, old: Path, final: Path) -> None:
        """Release external state only ``old`` refers to: the Milvus collections its saved
        descriptors name (:func:`speechret.search.milvus.drop_unreferenced`; FAISS files have
        none). Best effort: the new generation is already saved, so a failure here is a warning,
        never a failed write."""
        try:
            drop_unreferenced(old, final)
        except Exception as exc:  # noqa: BLE001 - an unreachable server must not fail the save
            warnings.warn(f"{old}: could not drop its Milvus collections ({type(exc).__name__}: {exc})", stacklevel=2)

    @staticmethod
    def state(directory: Path) -> dict[str, Any]:
        """The generation's ``state.json`` (high_water, count, method, matchers)."""
        return json.loads((Path(directory) / "state.json").read_text())

    def load(self, directory: Path) -> dict[str, Any]:
        """The matchers saved in generation ``directory``; a generation without them (written by
        an older layout) raises ``FileNotFoundError`` (the caller rebuilds: it is derived state)."""
        out = {}
        for name, node in self.nodes().items():
            if not (directory / name).exists():
                raise FileNotFoundError(f"{directory}: no saved {name!r} matcher")
            out[name] = get_class(node["_target_"]).load(directory / name, **_arguments(node))
        return out


__all__ = ["GENERATION_RE", "INDEX_DIR", "MatcherGenerations", "item_count"]
