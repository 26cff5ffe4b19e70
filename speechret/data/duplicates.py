"""Copies of one recording listed as several items: found by their file contents, then dropped.

A corpus can list one recording more than once: DSPSpeech-20's speaker 15307130191 has 8
"repetitions" of each word in its manifest, but only 3 distinct recordings per word (files
``-01``/``-06``, ``-02``/``-04``/``-07`` and ``-03``/``-05``/``-08`` hold the same samples). Left in,
such copies

* leak across any split that separates items rather than speakers (``split=repetition`` puts
  ``-08`` in test and its copies ``-03``/``-05`` in training; ``split=random`` likewise): the
  evaluation then scores recordings the model trained on;
* count one recording 2-3 times in every metric and in the training loss;
* make every same-speaker pair of copies a free hit at distance 0.

Two items are copies when their files hold the same bytes (:func:`file_digest`, BLAKE2b-128 of
the contents; the file names do not matter). Bytes, not decoded samples, so that the check costs no
decoding and gives the same answer whether or not the DataModule caches waveforms (the evaluation
re-splits a checkpoint's data without the cache and must find the same copies). Exact copies only:
a re-encoded, resampled or trimmed copy, or the same samples under other metadata, is not caught.

``data.duplicates`` (:data:`DUPLICATE_POLICIES`, :func:`resolve_duplicates`):

* ``drop`` (default): keep the first item of each group of copies (manifest order) and drop the
  rest, with a warning that counts them per speaker and names examples. A group whose items
  disagree on the content label (one recording filed as two words) is dropped whole: no label of
  it can be trusted.
* ``error``: stop with a :class:`~speechret.errors.ConfigError` naming the copies.
* ``keep``: no check (the behaviour before this option; checkpoints whose stored data config has
  no ``duplicates`` key were trained that way and are split again that way,
  :func:`speechret.evaluate.eval_sets.datamodule`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

from speechret.errors import ConfigError

log = logging.getLogger(__name__)

#: ``data.duplicates`` values (see the module docstring).
DUPLICATE_POLICIES = ("drop", "error", "keep")


def file_digest(path: Any) -> str:
    """Digest of a file's bytes (BLAKE2b-128), read in 1 MiB blocks; a missing or unreadable file
    raises :class:`~speechret.errors.ConfigError` naming it. Remembered per (path, size, mtime) for
    the process: an evaluation sets up the checkpoint's data more than once (its split, the
    threshold split, the evaluation set) and each reads the same files."""
    try:
        st = os.stat(path)
        return _digest(os.fspath(path), st.st_size, st.st_mtime_ns)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the file to check it for copies ({e.strerror or e})") from e


@functools.lru_cache(maxsize=1 << 20)
def _digest(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a rewritten file is read again
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def copy_groups(digests: Sequence[str]) -> list[list[int]]:
    """Indices of the items that share a digest, groups of two or more, each in input order and
    the groups in order of their first item."""
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(digests):
        groups.setdefault(d, []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def check_policy(policy: str, key: str = "data.duplicates") -> str:
    if policy not in DUPLICATE_POLICIES:
        raise ConfigError(f"{key}: unknown policy {policy!r}: {' | '.join(DUPLICATE_POLICIES)}")
    return policy


def _name(item: Any) -> str:
    path = str(getattr(item, "path", item))
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


def resolve_duplicates(items: Sequence[Any], digests: Sequence[str], policy: str = "drop",
                       source: str = "the corpus", key: str = "data.duplicates", label: str = "") -> list[int]:
    """Indices of ``items`` to keep under ``policy`` (see the module docstring), in input order.

    ``items`` need ``path``, ``speaker`` and ``label`` attributes; ``digests`` are their
    :func:`file_digest` values. ``source`` and ``key`` name the data and the option in messages;
    ``label`` starts the warning (default ``"<key>=drop"``).
    """
    check_policy(policy, key)
    if len(items) != len(digests):
        raise ValueError(f"resolve_duplicates: {len(items)} items but {len(digests)} digests")
    if policy == "keep":
        return list(range(len(items)))
    groups = copy_groups(digests)
    if not groups:
        return list(range(len(items)))
    conflicting = [g for g in groups if len({items[i].label for i in g}) > 1]
    examples = "; ".join(" = ".join(_name(items[i]) for i in g) for g in groups[:3])
    n_copies = sum(len(g) - 1 for g in groups)
    if policy == "error":
        raise ConfigError(
            f"{source}: {n_copies} items are copies of another item's file ({len(groups)} recordings "
            f"listed more than once; e.g. {examples}). {key}=drop keeps one item per recording, {key}=keep "
            "uses them all (copies can then fall on both sides of a split)")
    dropped: set[int] = set()
    for g in groups:
        dropped.update(g if g in conflicting else g[1:])
    by_speaker = Counter(str(items[i].speaker) for i in dropped)
    log.warning("%s: %d of %d items of %s are copies of another item's file (the same bytes) and were left out "
                "(by speaker: %s); e.g. %s", label or f"{key}=drop", len(dropped), len(items), source,
                ", ".join(f"{s} {n}" for s, n in by_speaker.most_common()), examples)
    for g in conflicting:
        log.warning("%s: one recording is filed under different labels and was left out whole: %s", key,
                    ", ".join(f"{_name(items[i])} (label {items[i].label})" for i in g))
    return [i for i in range(len(items)) if i not in dropped]


def unique_items(items: Sequence[Any], source: str = "the list") -> list[Any]:
    """``items`` with every copy but the first left out (``drop`` on their :func:`file_digest`), for
    code that lists a corpus's items itself rather than through the DataModule."""
    items = list(items)
    return [items[i] for i in resolve_duplicates(items, [file_digest(it.path) for it in items], "drop",
                                                 source=source, label="copies")]
