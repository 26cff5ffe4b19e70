"""Paper C's CTC side (§4.2, eq. 8): decoders, and the CTC training recipe for real isolated words.

* Decoding: :func:`greedy_ctc_decode` (best path), :func:`ctc_prefix_beam_search` (the most
  probable labelling of eq. 8), :func:`ctc_decode` choosing between them.
* :func:`init_blank_bias` - the blank-bias initialisation option of
  :class:`~speechret.models.hash_modules.CTCHashModule` (issue 13: the BiLSTM baseline sat in the
  all-blank plateau for 9 epochs on DSPSpeech-20).
* :func:`ctc_required_frames` / :func:`check_ctc_frames` - CTC can only align a labelling of
  ``L`` labels with ``r`` adjacent repeats to ``T >= L + r`` frames (a blank must separate each
  repeat; Graves et al. 2006 §3.1, Graves 2012 §7.3); an item with fewer frames has infinite
  loss, which ``zero_infinity`` would silently turn into zero.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def greedy_ctc_decode(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int) -> list[list[int]]:
    """Best-path decoding (Graves et al. 2006, "Connectionist temporal classification", §3.2):
    argmax per frame, collapse repeats, drop blanks.  The default of :class:`CTCHashModule`:
    one argmax per frame, exact when the output is peaky (the usual state of a CTC-trained net)
    and cheap enough for the PER of every validation batch.  It returns the labelling of the most
    probable *path*, not the most probable *labelling* (eq. 8 sums the paths of a labelling):
    :func:`ctc_prefix_beam_search` searches for the latter."""
    best = log_probs.argmax(-1).cpu().numpy()
    out = []
    for seq, n in zip(best, lengths.cpu().numpy()):
        s = seq[: int(n)]
        keep = np.ones(len(s), dtype=bool)
        keep[1:] = s[1:] != s[:-1]
        out.append([int(x) for x in s[keep] if x != blank])
    return out


def _prefix_beam_search_one(lp: np.ndarray, blank: int, beam_width: int) -> list[int]:
    """Prefix beam search over one utterance's ``(T, C)`` log-probabilities (float64)."""
    neg = -np.inf
    # prefix -> [log P(prefix, path ends in blank), log P(prefix, path ends in its last label)]
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, neg]}
    labels = [c for c in range(lp.shape[1]) if c != blank]
    for t in range(lp.shape[0]):
        frame = lp[t]
        nxt: dict[tuple[int, ...], list[float]] = {}

        def slot(prefix: tuple[int, ...]) -> list[float]:
            if prefix not in nxt:
                nxt[prefix] = [neg, neg]
            return nxt[prefix]

        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            cur = slot(prefix)  # blank: the prefix is unchanged and now ends in blank
            cur[0] = np.logaddexp(cur[0], total + frame[blank])
            last = prefix[-1] if prefix else None
            for c in labels:
                p = frame[c]
                ext = slot(prefix + (c,))
                if c == last:
                    # a repeat extends the prefix only after a blank ("a _ a" -> aa) ...
                    ext[1] = np.logaddexp(ext[1], pb + p)
                    # ... and collapses into it otherwise ("a a" -> a)
                    cur[1] = np.logaddexp(cur[1], pnb + p)
                else:
                    ext[1] = np.logaddexp(ext[1], total + p)
        # most probable prefixes first; ties by prefix, so the result is deterministic
        ranked = sorted(nxt.items(), key=lambda kv: (-np.logaddexp(kv[1][0], kv[1][1]), kv[0]))
        beams = dict(ranked[:beam_width])
    return list(next(iter(beams)))


def ctc_prefix_beam_search(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int,
                           beam_width: int = 8) -> list[list[int]]:
    """CTC prefix beam search: the most probable *labelling* ``argmax_Y P(Y|X)`` of paper C eq. (8)
    ("CTC beam search ... identify valid candidate paths and output the optimal solution through
    maximum likelihood selection"), approximately, keeping ``beam_width`` prefixes per frame.

    Graves 2012 ("Supervised Sequence Labelling with Recurrent Neural Networks", §7.5, prefix
    search decoding) and Hannun et al. 2014 ("First-pass large vocabulary continuous speech
    recognition using bi-directional recurrent DNNs", arXiv:1408.2873, Algorithm 1, here without a
    language model): every prefix carries the probability of the paths that produce it and end
    in a blank (``p_b``) or in its last label (``p_nb``); per frame a prefix stays (blank, or a
    repeat of its last label collapsing into it) or grows by one label — a repeat of the last
    label only from ``p_b``, since CTC's collapsing map merges repeats not separated by a blank.
    ``log_probs``: ``(B, T, C)`` log-probabilities (log-softmax; unnormalised logits are
    normalised here), ``lengths``: valid frames per item.  With ``beam_width=1`` it keeps one
    prefix per frame (not the same as best path); a wide beam finds the most probable labelling
    where best path does not (tested on a two-frame posteriorgram)."""
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    lp = log_probs.detach().float().log_softmax(-1).double().cpu().numpy()
    return [_prefix_beam_search_one(x[: int(n)], int(blank), int(beam_width))
            for x, n in zip(lp, lengths.cpu().numpy())]


#: CTC decoders of :meth:`CTCHashModule.decode`.
CTC_DECODERS = ("greedy", "beam")


def ctc_decode(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int, decoding: str = "greedy",
               beam_width: int = 8) -> list[list[int]]:
    """``decoding="greedy"`` (:func:`greedy_ctc_decode`) or ``"beam"`` (:func:`ctc_prefix_beam_search`)."""
    if decoding == "greedy":
        return greedy_ctc_decode(log_probs, lengths, blank)
    if decoding == "beam":
        return ctc_prefix_beam_search(log_probs, lengths, blank, beam_width)
    raise ValueError(f"decoding must be one of {CTC_DECODERS}, not {decoding!r}")


# --------------------------------------------------------------------------- blank bias
def init_blank_bias(out_layer: nn.Linear, blank: int, *, bias: float | None = None,
                    prior: float | None = None) -> float:
    """Initialise the output layer's bias so that the CTC blank starts where it is wanted.

    ``bias``: set the blank logit's bias to this value (the other biases keep their init).
    ``prior``: the "prior-probability" initialisation of Lin et al. 2017 ("Focal Loss for Dense
    Object Detection", §3.3 / §4.1: initialise the bias of a rare or common class so that its
    initial probability is ``pi``; also Karpathy 2019, "A Recipe for Training Neural Networks",
    "init well"): every non-blank bias is set to 0 and the blank's to
    ``log(prior * (K - 1) / (1 - prior))``, so that the softmax over ``K`` outputs gives the
    blank probability ``prior`` when the weighted inputs are zero. ``prior`` near the blank's
    frame share (``1 - labels / frames``) starts the model where CTC training would first take it
    (the all-blank plateau of Graves 2012 §7.4 and Zeyer et al. 2021, "Why does CTC result in
    peaky behavior?", arXiv:2105.14849), so the first updates go to the labels; a small ``prior``
    or a negative ``bias`` instead delays the collapse onto the blank. Paper C gives neither
    (default: off). Returns the blank bias that was set.
    """
    if (bias is None) == (prior is None):
        raise ValueError("init_blank_bias: give exactly one of bias= or prior=")
    if out_layer.bias is None:
        raise ValueError("init_blank_bias: the output layer has no bias")
    k = out_layer.out_features
    if not 0 <= blank < k:
        raise ValueError(f"blank {blank} is not an output of a layer with {k} outputs")
    with torch.no_grad():
        if prior is not None:
            if not 0.0 < prior < 1.0:
                raise ValueError(f"blank prior must lie in (0, 1), got {prior}")
            value = math.log(prior * (k - 1) / (1.0 - prior))
            out_layer.bias.zero_()
        else:
            value = float(bias)
        out_layer.bias[blank] = value
    return value


# ----------------------------------------------------------------- frames per label
def compact_targets(targets: torch.Tensor, drop: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded ``(B, L)`` targets (padding ``-1``) without ``drop`` (the "other" class when it is
    the blank), left-aligned again: ``(targets (B, L) padded with -1, lengths (B,))``."""
    keep = targets >= 0
    if drop is not None:
        keep &= targets != drop
    lengths = keep.sum(1)
    pos = torch.where(keep, keep.long().cumsum(1) - 1, targets.shape[1])  # dropped -> overflow column
    out = targets.new_full((targets.shape[0], targets.shape[1] + 1), -1)
    out.scatter_(1, pos, torch.where(keep, targets, -1))
    return out[:, :-1], lengths


def ctc_required_frames(targets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``L + r`` per item of left-aligned padded targets: CTC's minimum input length (``r`` = the
    adjacent repeated labels, each needing a blank frame between the two)."""
    if targets.shape[1] < 2:
        return lengths.clone()
    same = targets[:, 1:] == targets[:, :-1]
    valid = torch.arange(1, targets.shape[1], device=targets.device)[None, :] < lengths[:, None]
    return lengths + (same & valid).sum(1)


def check_ctc_frames(input_lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor,
                     ids: Sequence[str] | None = None, mode: str = "error", warn_ratio: float = 1.5,
                     frame_note: str = "") -> tuple[int, int]:
    """Check that every item has ``T >= L + r`` frames (``targets`` left-aligned, padded -1).

    ``mode="error"``: raise ``ValueError`` naming each infeasible item (its id, T, L, r);
    ``"warn"``: log it and go on (``zero_infinity`` then zeroes its loss); ``"off"``: nothing.
    Items with fewer than ``warn_ratio * (L + r)`` frames are logged as tight (a warning): CTC
    can align them, but with little room for blanks the alignment is nearly forced.
    Returns ``(n_infeasible, n_tight)``.
    """
    if mode == "off" or targets.numel() == 0:
        return 0, 0
    if mode not in ("error", "warn"):
        raise ValueError(f"frame check mode must be error, warn or off, not {mode!r}")
    # one device-to-host copy per batch (this runs every training step), not one per tensor
    need = ctc_required_frames(targets, target_lengths).long()
    t, need, lab = torch.stack([input_lengths.detach().long().to(need.device), need,
                                target_lengths.detach().long()]).cpu()
    bad = (t < need).nonzero().flatten().tolist()
    tight = ((t >= need) & (t.double() < warn_ratio * need.double()) & (need > 0)).nonzero().flatten().tolist()

    def name(i: int) -> str:
        return ids[i] if ids is not None and i < len(ids) else f"#{i} of the batch"

    def numbers(i: int) -> str:
        return (f"T={int(t[i])} frames, L + r = {int(need[i])} (L={int(lab[i])} labels, "
                f"r={int(need[i] - lab[i])} repeats)")

    if bad:
        msg = (f"CTC cannot align {len(bad)} item(s) (needs T >= L + r): "
               + "; ".join(f"{name(i)}: {numbers(i)}" for i in bad[:8]) + (" ..." if len(bad) > 8 else "")
               + ". The features give too few frames per label" + (f" ({frame_note})" if frame_note else "")
               + ": use a higher frame rate (e.g. a smaller SVS hop beta), less trimming / speed-up, "
               "or drop these items (model.frame_check=warn lets zero_infinity zero their loss).")
        if mode == "error":
            raise ValueError(msg)
        log.warning(msg)
    if tight:
        log.warning("CTC: %d item(s) have fewer than %.1f x (L + r) frames, e.g. %s: %s",
                    len(tight), warn_ratio, name(tight[0]), numbers(tight[0]))
    return len(bad), len(tight)
