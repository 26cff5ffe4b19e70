"""Train / val / test splits of a corpus's items (indices into the item list).

* :func:`split_by_speaker` — speaker-disjoint (papers A/B/C evaluate on unseen speakers);
* :func:`split_by_repetition` — every speaker and word in every split, repetitions held out
  (the DSPSpeech-20 protocol: train on repetitions 1-6, test on 7-8);
* :func:`split_random` — stratified by content label;
* :func:`split_from_manifest` — the items' own ``split`` field (THCHS-30, AISHELL-3 folders).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from speechret.errors import ConfigError

from .item import Item

__all__ = ["SPLITS", "split_by_speaker", "split_by_repetition", "split_random", "split_from_manifest"]

SPLITS = ("train", "val", "test")


def split_by_speaker(
    items: Sequence[Item], val_fraction: float, test_fraction: float, seed: int,
    val_speakers: Sequence[str] | None = None, test_speakers: Sequence[str] | None = None,
) -> dict[str, list[int]]:
    """Speaker-disjoint split: speakers are shuffled with ``seed`` and assigned whole.

    The number of val/test speakers is ``round(fraction * n_speakers)``, at least one when the
    fraction is positive and at least one speaker stays in train. ``test_speakers`` /
    ``val_speakers`` name them instead (e.g. the folds of a speaker k-fold run,
    ``bench/cross_speaker.py``); a split given by name takes no speaker from the shuffle, and a
    name that is not in the corpus, or in both lists, raises :class:`~speechret.errors.ConfigError`.
    """
    all_speakers = sorted({it.speaker for it in items})
    named = {}
    for key, given in (("data.test_speakers", test_speakers), ("data.val_speakers", val_speakers)):
        if given is not None:
            given = [str(x) for x in given]
            unknown = sorted(set(given) - set(all_speakers))
            if unknown:
                raise ConfigError(f"{key}: speakers {unknown} are not in the corpus ({len(all_speakers)} speakers)")
            named[key] = set(given)
    if len(named) == 2 and named["data.test_speakers"] & named["data.val_speakers"]:
        raise ConfigError(f"data.val_speakers and data.test_speakers share "
                          f"{sorted(named['data.test_speakers'] & named['data.val_speakers'])}")
    taken = set().union(*named.values()) if named else set()
    speakers = [s for s in all_speakers if s not in taken]
    rng = random.Random(seed)
    rng.shuffle(speakers)
    n = len(all_speakers)

    def count(frac: float) -> int:
        return 0 if frac <= 0 else max(1, round(frac * n))

    n_test = 0 if "data.test_speakers" in named else count(test_fraction)
    n_val = 0 if "data.val_speakers" in named else count(val_fraction)
    if n_test + n_val >= len(speakers):
        raise ValueError(
            f"speaker split needs more speakers: {n} speakers cannot give the val and test speakers "
            f"asked for and keep one for training"
        )
    test_spk = named.get("data.test_speakers") or set(speakers[:n_test])
    val_spk = named.get("data.val_speakers") or set(speakers[n_test : n_test + n_val])
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i, it in enumerate(items):
        out["test" if it.speaker in test_spk else "val" if it.speaker in val_spk else "train"].append(i)
    return out


def split_by_repetition(
    items: Sequence[Item], val_repetitions: Sequence[int], test_repetitions: Sequence[int]
) -> dict[str, list[int]]:
    """Repetition split: every speaker and word in every split, repetitions held out."""
    if any(it.repetition < 0 for it in items):
        raise ValueError("repetition split needs a repetition number on every item (manifest column 'repetition')")
    val_r, test_r = set(val_repetitions), set(test_repetitions)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i, it in enumerate(items):
        out["test" if it.repetition in test_r else "val" if it.repetition in val_r else "train"].append(i)
    return out


def split_random(
    items: Sequence[Item], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Random split stratified by content label (each label keeps the same proportions)."""
    by_label: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        by_label.setdefault(it.label, []).append(i)
    rng = random.Random(seed)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        n_test = round(test_fraction * len(idx))
        n_val = round(val_fraction * len(idx))
        out["test"] += idx[:n_test]
        out["val"] += idx[n_test : n_test + n_val]
        out["train"] += idx[n_test + n_val :]
    return {k: sorted(v) for k, v in out.items()}


def split_from_manifest(items: Sequence[Item]) -> dict[str, list[int]]:
    """Use each item's ``split`` field ("dev"/"valid" count as val; empty counts as train)."""
    alias = {"": "train", "dev": "val", "valid": "val", "validation": "val"}
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i, it in enumerate(items):
        s = alias.get(it.split, it.split)
        if s not in out:
            raise ValueError(f"item {it.id}: unknown split {it.split!r} (expected train/val/test)")
        out[s].append(i)
    return out
