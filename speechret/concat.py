"""Multi-word training items for CTC models: the words of a batch joined into utterances.

Paper C trains its CTC models on sentences (§5.1: THCHS-30 and AISHELL-3), so a model learns to
emit one label per syllable however many syllables an utterance holds, and keyword query-by-example
(§4.4, Fig. 10) then finds a word inside a longer utterance.  A corpus of isolated words
(DSPSpeech-20: every item one two-syllable word) teaches the opposite: every training target has
two labels, and the SVS models of ``bench/paper_c_words.py`` learned to decode *every* utterance to
exactly two segments, a concatenation of four words included (``reports/paper_c_words_e60.md``).
:class:`ConcatWords` removes that length prior by training on concatenations of the batch's own
words, with their CTC targets joined in the same order: continuous speech made from word tokens,
as connected-word recognition builds an utterance's model by concatenating word models (Rabiner &
Juang, "Fundamentals of Speech Recognition", 1993, ch. 7), here applied to the training audio.

Choices (not in the paper; configurable or documented here):

* the batch is *re-packed*, not enlarged: its items are shuffled and cut into consecutive groups of
  ``k`` items in ``words`` = ``[lo, hi]``, each group one row.  Every word is still seen once per
  epoch and the speech frames per step stay the same.  ``pack`` says where ``k`` is drawn:

  - ``row``: uniform per row, so a batch mixes rows of 1 and of 4 words and is padded to its
    longest row, which a recurrent model runs through step by step.  Measured with
    ``experiment=biconvlstm_ctc_cpu`` on DSPSpeech-20 (2 threads, batch 16): 73 s per epoch against
    38 s without;
  - ``batch``: once per batch, with probability proportional to ``k``, and every row of the batch
    has ``k`` words (the last one the remainder), so the rows have about the same length and little
    of the step is padding.  Drawing ``k`` with probability proportional to ``k`` keeps both
    expectations of ``row``: the share of rows with ``k`` words is uniform (a batch of ``k`` gives
    ``B / k`` rows) and the share of words in rows of ``k`` is proportional to ``k``.  What changes
    is that one step's rows have one word count, as length-bucketed batching does (e.g.
    ``torchaudio``'s and ESPnet's bucket samplers).  Measured with the same model, fold and 60
    epochs: 52 s per epoch against 73 s, but validation PER 0.116 against 0.090 and keyword F1 (8
    words) 0.841 against 0.861, so ``row`` stays the default (``conf/augment/words.yaml``);

  ``max_seconds`` bounds the longest row in both;
* words are joined by silences of ``pause_s`` = ``[lo, hi]`` seconds (uniform per joint), none
  before the first or after the last word (the front end has already trimmed each word's own
  leading and trailing silence and the waveform chain that follows adds time shifts and noise
  over the whole row, pauses included);
* a row never grows past ``max_seconds``: a word that would take it past is the first word of the
  next row instead (a lone word longer than that stays alone and is not cut);
* the words of a row may come from different speakers of the batch (a batch holds the speakers it
  was drawn with; an utterance by several voices is harder than one by one voice, never easier);
* other per-item batch entries follow the row's first word (``index``, ``item_index``, ``cpo``,
  speakers), ids are joined with ``+``, and ``label`` is ``-1`` (unknown) for a row of several words:
  a concatenation has no single content class, so only CTC targets are trained from it
  (``data.target=ctc``: the DataModule refuses any other target, and a batch without ``targets``
  is a :class:`ConfigError`).

Runs in :meth:`speechret.data.datamodule.SpeechDataModule.prepare_batch` after the front end and
before the waveform chain, on the batch's device, on training batches only; the identity in
``eval()`` mode.  The draws come from a seeded NumPy generator (the same on every device).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from speechret.augment import take_rows
from speechret.errors import ConfigError
from speechret.spec_augment import check_prob

__all__ = ["ConcatWords"]


class ConcatWords(nn.Module):
    """Re-pack a training batch of words into rows of ``words`` words joined by pauses, their CTC
    targets joined (see the module docstring for every choice).

    Args:
        words: ``[lo, hi]`` words per row (uniform, inclusive; ``[1, 1]`` is the identity).
        pause_s: ``[lo, hi]`` seconds of silence between two words of a row.
        p: probability that a batch is re-packed (otherwise it passes unchanged).
        sample_rate: of the waveforms (for the pauses and ``max_seconds``).
        max_seconds: longest row in seconds (``None``: no limit).
        seed: seed of the draws.
        pack: ``"row"`` (a word count drawn per row) or ``"batch"`` (one per batch, with
            probability proportional to the count; rows of about equal length, little padding).

    ``forward(batch) -> batch``: a batch dict of :mod:`speechret.data.datamodule` with ``wave``
    (B, T), ``wave_lengths``, ``targets`` (B, L) padded with -1 and ``target_lengths``; returns a
    new dict with ``R <= B`` rows.
    """

    def __init__(self, words: Sequence[int] = (1, 4), pause_s: Sequence[float] = (0.05, 0.5), p: float = 1.0,
                 sample_rate: int = 16000, max_seconds: float | None = 8.0, seed: int = 0,
                 pack: str = "row") -> None:
        super().__init__()
        lo, hi = int(words[0]), int(words[-1])
        if not 1 <= lo <= hi:
            raise ConfigError(f"augment.concat.words must be [lo, hi] with 1 <= lo <= hi, got {list(words)}")
        plo, phi = float(pause_s[0]), float(pause_s[-1])
        if not 0.0 <= plo <= phi:
            raise ConfigError(f"augment.concat.pause_s must be [lo, hi] seconds with 0 <= lo <= hi, got {list(pause_s)}")
        if max_seconds is not None and not float(max_seconds) > 0:
            raise ConfigError(f"augment.concat.max_seconds must be > 0 or null, got {max_seconds}")
        if not int(sample_rate) > 0:
            raise ConfigError(f"augment.concat.sample_rate must be > 0, got {sample_rate}")
        if pack not in ("row", "batch"):
            raise ConfigError(f"augment.concat.pack must be 'row' or 'batch', got {pack!r}")
        self.words, self.pause_s, self.pack = (lo, hi), (plo, phi), pack
        self.counts = np.arange(lo, hi + 1)
        self.batch_probs = self.counts / self.counts.sum()
        self.p = check_prob(p, "ConcatWords")
        self.sample_rate = int(sample_rate)
        self.max_samples = None if max_seconds is None else int(round(float(max_seconds) * self.sample_rate))
        self.rng = np.random.default_rng(int(seed))

    def extra_repr(self) -> str:
        return (f"words={list(self.words)}, pause_s={list(self.pause_s)}, p={self.p}, "
                f"max_samples={self.max_samples}, pack={self.pack!r}")

    def groups(self, lengths: Sequence[int]) -> list[tuple[list[int], list[int]]]:
        """Draw the rows of a batch of items of ``lengths`` samples: ``[(items, pauses)]``, each row's
        items in order and the pause (samples) after each item but the last."""
        order = self.rng.permutation(len(lengths)).tolist()
        rows: list[tuple[list[int], list[int]]] = []
        per_batch = (int(self.rng.choice(self.counts, p=self.batch_probs))
                     if self.pack == "batch" else None)
        i = 0
        while i < len(order):
            want = per_batch if per_batch is not None else int(self.rng.integers(self.words[0], self.words[1] + 1))
            items, pauses, total = [order[i]], [], int(lengths[order[i]])
            i += 1
            while len(items) < want and i < len(order):
                pause = int(round(self.rng.uniform(*self.pause_s) * self.sample_rate))
                nxt = total + pause + int(lengths[order[i]])
                if self.max_samples is not None and nxt > self.max_samples:
                    break
                items.append(order[i])
                pauses.append(pause)
                total = nxt
                i += 1
            rows.append((items, pauses))
        return rows

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        if not self.training or self.words == (1, 1) or self.rng.random() >= self.p:
            return batch
        if "targets" not in batch or "target_lengths" not in batch:
            raise ConfigError("augment.concat (ConcatWords) joins CTC targets, but the batch has none: it is for "
                              "CTC models (data.target=ctc); remove augment.concat for this model")
        wave, lens = batch["wave"], batch["wave_lengths"]
        b = wave.shape[0]
        lengths = lens.detach().long().cpu().tolist()
        tlens = batch["target_lengths"].detach().long().cpu().tolist()
        rows = self.groups(lengths)
        row_len = [sum(lengths[j] for j in items) + sum(pauses) for items, pauses in rows]
        row_tlen = [sum(tlens[j] for j in items) for items, _ in rows]
        out = wave.new_zeros((len(rows), max(row_len)))
        targets = batch["targets"]
        tout = targets.new_full((len(rows), max(row_tlen)), -1)
        for r, (items, pauses) in enumerate(rows):
            pos = tpos = 0
            for k, j in enumerate(items):
                out[r, pos:pos + lengths[j]] = wave[j, :lengths[j]]
                tout[r, tpos:tpos + tlens[j]] = targets[j, :tlens[j]]
                pos += lengths[j] + (pauses[k] if k < len(pauses) else 0)
                tpos += tlens[j]
        new = take_rows(batch, torch.tensor([items[0] for items, _ in rows], dtype=torch.long))
        ids = batch.get("ids")
        if isinstance(ids, (list, tuple)) and len(ids) == b:  # a row is named by all of its words
            new["ids"] = ["+".join(str(ids[j]) for j in items) for items, _ in rows]
        new["wave"] = out
        new["wave_lengths"] = torch.tensor(row_len, dtype=lens.dtype, device=lens.device)
        new["targets"] = tout
        new["target_lengths"] = torch.tensor(row_tlen, dtype=batch["target_lengths"].dtype,
                                             device=batch["target_lengths"].device)
        if "label" in new:
            single = torch.tensor([len(items) == 1 for items, _ in rows], device=new["label"].device)
            new["label"] = torch.where(single, new["label"], -1)
        return new
