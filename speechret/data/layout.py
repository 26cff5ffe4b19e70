"""What every corpus loader shares: audio extensions, missing-file handling, durations, and
content labels from transcripts.

Labels for sentence corpora (THCHS-30, AISHELL-3) are content classes: the index of the
utterance's distinct text in sorted (Unicode code point) order of all distinct texts of the
whole corpus (all splits, before ``split=`` selection, so labels agree between a train and a
test load), whitespace ignored; recordings of the same prompt by different speakers share a
label, which is what retrieval relevance needs (papers A/B: a hit is relevant iff same content).
"""

from __future__ import annotations

import os
import warnings

from speechret.errors import ConfigError

from .item import Item, ManifestError
from .manifest import audio_duration

__all__ = ["AUDIO_EXTENSIONS", "fill_durations", "resolve_missing", "labels_from_text"]

AUDIO_EXTENSIONS: tuple[str, ...] = ("wav", "flac", "mp3")


def fill_durations(items: list[Item]) -> None:
    """Fill unknown (``<= 0``) durations from the audio headers, in place."""
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


def resolve_missing(items: list[Item], source: str, missing: str) -> list[Item]:
    """Swap missing files for same-stem alternatives; then error / skip the rest."""
    if missing not in ("error", "skip"):
        raise ConfigError(f"missing must be 'error' or 'skip', not {missing!r}")
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


def labels_from_text(items: list[Item]) -> list[Item]:
    """Copies of ``items`` labelled by their distinct text (sorted, whitespace ignored)."""
    keys = sorted({_text_key(it.text) for it in items})
    index = {k: i for i, k in enumerate(keys)}
    return [it.replace(label=index[_text_key(it.text)]) for it in items]
