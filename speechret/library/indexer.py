"""Adding a corpus to an encrypted library (the work behind ``index.py``).

For every item of a manifest, in batches: load and validate the audio (:func:`load_audio`: a
file that is unreadable, empty, truncated, non-finite or too short is *reported and skipped*,
never fatal) → codes through the checkpoint's :class:`~speechret.hashing.hasher.Hasher` (the training
feature pipeline) → encrypt the 16-bit PCM at the model's sample rate → :meth:`SpeechLibrary.add_batch`
(under the library's writer lock: blobs first, then one SQLite transaction per batch).  Items
already committed are skipped (their opaque ids are keyed HMACs of the corpus ids), so a run
interrupted at any point is resumed by running it again, and two runs at once interleave their
batches without duplicating or corrupting anything.  The FAISS index is synced at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from speechret.audio import AudioError, AudioPolicy, check_waveform, load_audio, to_pcm16  # to_pcm16: re-exported
from speechret.data.manifest import Item
from speechret.hashing.hasher import Hasher
from speechret.library.store import MANIFEST, LibraryError, SpeechLibrary, holds_data

log = logging.getLogger(__name__)


def library_manifest(hasher: Hasher, checkpoint: str | Path | None, index: dict[str, Any],
                     keyed_codes: bool = False) -> dict[str, Any]:
    """The manifest of a new library for codes made by ``hasher`` (the checkpoint is kept as its
    sha256 and file name only; ``keyed_codes``: :mod:`speechret.hashing.keyed`)."""
    probe = hasher.codes_of_waves([np.zeros(hasher.sample_rate, dtype=np.float32)])
    cfg = hasher.config or {}
    return {
        "hash_method": hasher.method,
        "n_classes": None,
        **hasher.hashing.manifest_fields(probe),
        "sample_rate": hasher.sample_rate,
        "model": cfg.get("model"),
        "features": cfg.get("features"),
        "hash": {"method": hasher.method, "n_classes": hasher.n_classes},
        "checkpoint": str(checkpoint) if checkpoint else None,
        "index": dict(index),
        "keyed_codes": bool(keyed_codes),
    }


def open_or_create(path: str | Path, hasher: Hasher, cipher: Any, checkpoint: str | Path | None,
                   index: dict[str, Any], force: bool = False, keyed_codes: bool = False) -> SpeechLibrary:
    """Open the library at ``path`` (checking the key, the hash method and the checkpoint's
    sha256 — another checkpoint is refused unless ``force``), or create it for this hasher. A
    directory that holds library data without a manifest is refused, never re-created."""
    path = Path(path)
    if not (path / MANIFEST).is_file() and not holds_data(path):
        m = library_manifest(hasher, checkpoint, index, keyed_codes)
        if m["checkpoint"] is None:
            m.pop("checkpoint")
        try:
            return SpeechLibrary.create(path, m, cipher)
        except FileExistsError:  # another writer created it meanwhile
            pass
    lib = SpeechLibrary.open(path, cipher)
    if lib.method != hasher.method:
        lib.close()
        raise LibraryError(f"{path}: library holds {lib.method} codes, the checkpoint makes {hasher.method}")
    if checkpoint:
        try:
            lib.check_model(checkpoint, force=force)
        except LibraryError:
            lib.close()
            raise
    return lib


@dataclass
class IndexReport:
    added: int = 0
    skipped_existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def seconds_of_audio_per_second(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0


def index_items(lib: SpeechLibrary, hasher: Hasher, items: Sequence[Item], cipher: Any,
                batch_size: int = 32, progress: bool = True, policy: AudioPolicy | None = None) -> IndexReport:
    """Add ``items`` to ``lib`` in batches (resumable, idempotent); returns what happened."""
    report = IndexReport()
    t0 = time.perf_counter()
    pending = []
    for it in items:
        if lib.has(it.id):
            report.skipped_existing += 1
        else:
            pending.append(it)
    columns = [TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("index", total=len(pending))
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            waves, ok = [], []
            for it in batch:
                try:
                    # bad-input policy (speechret.audio.AudioPolicy): errors skip the file, warnings name it
                    waves.append(check_waveform(load_audio(it.path, hasher.sample_rate), hasher.sample_rate, it.path,
                                                policy, getattr(hasher.features, "fixed_samples", None)).wave)
                    ok.append(it)
                except AudioError as exc:
                    report.failed.append((it.path, str(exc)))
                    log.warning("skipped: %s", exc)
            if ok:
                codes = hasher.codes_of_waves(waves)
                rows = [
                    {"item_id": it.id, "source": it.path, "pcm": to_pcm16(w), "sample_rate": hasher.sample_rate,
                     "duration": len(w) / hasher.sample_rate, "speaker": it.speaker, "label": it.label,
                     "text": it.text}
                    for it, w in zip(ok, waves)
                ]
                added = lib.add_batch(rows, codes, cipher=cipher)
                report.added += len(added)
                report.audio_seconds += sum(len(w) for w in waves) / hasher.sample_rate
            bar.advance(task, len(batch))
    lib.sync_index()
    report.wall_seconds = time.perf_counter() - t0
    return report
