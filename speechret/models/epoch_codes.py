"""The codes of one validation or test epoch, gathered over DDP ranks (the set ``val/map`` and
``test/map`` rank; :meth:`speechret.models.hash_modules.HashingModule.epoch_eval_set`).

mAP is not an average of per-item values over a fixed set — every item is both a query and a
database entry — so per-rank mAPs of the shards cannot be averaged into the mAP of the set.  Each
rank's collected batches are therefore exchanged with ``torch.distributed.all_gather_object``
(pickled; it carries paper C's variable-length lists of per-segment codes as well as fixed-length
bit codes, which a padded ``all_gather`` of tensors could not without an extra length encoding)
and every rank holds the whole set.  Lightning's ``DistributedSampler`` pads the dataset by
repeating items until every rank has the same count; the batches' dataset ``index`` drops those
repeats (first occurrence kept) and orders the items by index, which is the order of a single
process' sequential loader, so any number of processes gives the single-process value.  Batches
without an ``index`` are kept as they come (a warning under DDP: repeated items then count
twice).  With one process nothing is exchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from speechret.hashing import HashMethod, take

log = logging.getLogger(__name__)


def gather_epoch_codes(entries: Sequence[tuple[Any, ...]], hashing: HashMethod,
                       with_speakers: bool = False) -> tuple[Any, ...]:
    """``(codes, labels)`` of the epoch over all ranks, each dataset item once, in index order
    (see the module docstring); with ``with_speakers`` also each item's speaker (``None`` when a
    batch carried none).  ``entries``: this rank's ``(codes, labels, index, speakers)`` per batch
    (the last two may be missing or ``None``); ``hashing`` joins the batches' codes."""
    entries = [tuple(e) + (None,) * (4 - len(e)) for e in entries]  # (codes, labels, index, speakers)
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    world = torch.distributed.get_world_size() if distributed else 1
    if world > 1:
        parts: list[Any] = [None] * world
        torch.distributed.all_gather_object(parts, entries)
        entries = [e for part in parts for e in part]
    if not entries:
        empty = ([], np.zeros(0, dtype=np.int64))
        return (*empty, None) if with_speakers else empty
    labels = np.concatenate([e[1] for e in entries])
    codes: Any = hashing.concat([e[0] for e in entries])
    speakers = (np.concatenate([e[3] for e in entries])
                if all(e[3] is not None for e in entries) else None)
    if all(e[2] is not None for e in entries):
        _, first = np.unique(np.concatenate([e[2] for e in entries]), return_index=True)
        labels = labels[first]
        codes = take(codes, first)
        speakers = None if speakers is None else speakers[first]
    elif world > 1:
        log.warning("batches carry no 'index': items the DistributedSampler repeated to even out "
                    "%d ranks count more than once in the mAP", world)
    return (codes, labels, speakers) if with_speakers else (codes, labels)


__all__ = ["gather_epoch_codes"]
