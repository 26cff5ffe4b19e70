"""Paper C (002) §4.4: merged pronunciation segments, 27 bits each, grouped sliding matching.

Steps 1-4: drop frames whose argmax is "other" (c_27), merge adjacent frames of the same argmax
with eq. (10), binarise every merged frame against its median ``med = y_(14)`` by eq. (11)
(``h = 1 if y > med``) -> 27 bits per segment; retrieval groups of 27 bits (§4.4 retrieval steps
1-7) go into a d = 32 FAISS binary index via :func:`pack_groups_27` and are verified by the
sliding matching of :mod:`speechret.hashing.sliding`. "Adjacent" means adjacent in the network's
output (``merge_across_other=False``, default): a run of dropped "other"/blank frames ends a
segment, so the segments are exactly the labels CTC's collapsing map reads from the same frames
("ba ba" stays two segments), see :func:`segments_paper_c`.

Step 4's binarisation is eq. (11) by default (``binarize="median"``). ``binarize="argmax"`` is
speechret's opt-in alternative (not in the paper; :func:`binarize_argmax`): each segment's code is
the one-hot of its pronunciation class, the class step 3 already merged it by.

A pair matches at γ iff an alignment exists and its float64 decision distance is ``≤ γ`` (step 6
fails only when ``d̄ > γ``): the one decision function :func:`speechret.hashing.sliding.sliding_decisions`
serves evaluation and ``search.py`` alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from speechret.errors import ConfigError
from speechret.hashing.bits import ArrayLike, as_tensor, field, pack_groups
from speechret.hashing.method import HashMethod, check_compare_mode
from speechret.hashing.sliding import (
    DEFAULT_DIRECTION,
    as_words,
    check_direction,
    decision_distances,
    pairwise_sliding_distance,
    sliding_decisions,
)

if TYPE_CHECKING:
    from torch import Tensor

#: paper C: index of the "other" class c_27 (silence, breath, noise) in the 27 scores.
OTHER_INDEX = 26
#: paper C: bits per segment / FAISS group width.
PAPER_C_BITS = 27
PAPER_C_GROUP_BITS = 32


# --------------------------------------------------------------------------------------- paper C
class PaperCSegments(NamedTuple):
    """Paper C §4.4 steps 2-3 result for one utterance: merged scores ``F''`` (S, 27), the
    argmax class of every segment (S,), and the first / last original frame of each (S,)."""

    scores: Tensor
    labels: Tensor
    start: Tensor
    end: Tensor


def segments_paper_c(
    scores: ArrayLike,
    other_index: int | None = OTHER_INDEX,
    merge: str = "eq10",
    merge_across_other: bool = False,
    drop_mask: ArrayLike | None = None,
) -> PaperCSegments:
    """Paper C §4.4 steps 2-3: drop "other" frames, then merge runs of the same argmax.

    Step 2: keep ``F' = {f_t | argmax(f_t) != other}``. Frames flagged in ``drop_mask`` (``(T,)``
    bool, e.g. frames where the CTC blank wins) are dropped as well.
    Step 3, eq. (10): walking through F' in order, ``f'_i = f_i`` when ``argmax(f_i)`` differs
    from the previous merged frame's argmax, else ``f'_i = (f_i + f'_{i-1}) / 2`` replacing it.

    * ``merge="eq10"`` (default) applies eq. (10) literally: the recursive pairwise average, so a
      run f_1..f_n becomes f_1/2^(n-1) + sum_{j>=2} f_j/2^(n-j+1) (the latest frames weigh most).
      ``merge="mean"`` uses the plain arithmetic mean of the run instead. Either way the merged
      frame keeps the run's argmax (an average of vectors sharing an argmax shares it).
    * ``merge_across_other=False`` (default): "adjacent" means adjacent in the network's output
      O (step 1), so a run of dropped frames ("other", or CTC blank via ``drop_mask``) between two
      frames of the same class ends the segment. This is how CTC reads the frames the model was
      trained on (eq. 8): its collapsing map removes repeats *before* blanks (Graves et al. 2006,
      "Connectionist temporal classification", §3.1: B(a−ab−) = B(−aa−−abb) = aab), so
      ``b _ _ b`` is two labels, and a CTC model emits a repeated syllable ("ba ba" → initials
      b, b) exactly as two peaks separated by blank/"other". The segment labels are then the
      greedy CTC decoding with "other" removed (tested).
    * ``merge_across_other=True``: the literal reading of eq. (10) over F' (adjacent *after*
      step 2 dropped the frames): a run interrupted only by dropped frames merges into one
      segment — repeated syllables ("ba ba") and even "ba <pause> ba" collapse into one b
      segment, and with a peaky CTC model nearly every repeat does. Kept for comparison.
    * ``other_index=None`` drops nothing by argmax (only ``drop_mask``).

    ``scores``: ``(T, D)`` with D = 27 in paper C. Returns :class:`PaperCSegments` with S >= 0.
    """
    import torch

    if merge not in ("eq10", "mean"):
        raise ValueError(f"merge must be 'eq10' (paper C eq. 10) or 'mean', got {merge!r}")
    y = as_tensor(scores).float()
    if y.dim() != 2:
        raise ValueError(f"paper C scores must be (T, D), got {tuple(y.shape)}")
    t_all, d = y.shape
    if other_index is not None and not 0 <= other_index < d:
        raise ValueError(f"other_index {other_index} out of range for {d} classes")
    arg = y.argmax(dim=1) if t_all else torch.zeros(0, dtype=torch.long, device=y.device)
    keep = torch.ones(t_all, dtype=torch.bool, device=y.device)
    if other_index is not None:
        keep &= arg != other_index
    if drop_mask is not None:
        dm = as_tensor(drop_mask).to(y.device).bool()
        if dm.shape != (t_all,):
            raise ValueError(f"drop_mask must be ({t_all},), got {tuple(dm.shape)}")
        keep &= ~dm
    idx = torch.nonzero(keep, as_tuple=False).squeeze(1)
    n = idx.numel()
    if n == 0:
        e = torch.zeros(0, dtype=torch.long, device=y.device)
        return PaperCSegments(y.new_zeros((0, d)), e, e, e.clone())
    f, lab = y[idx], arg[idx]
    new = torch.ones(n, dtype=torch.bool, device=y.device)
    new[1:] = lab[1:] != lab[:-1]
    if not merge_across_other:
        new[1:] |= idx[1:] != idx[:-1] + 1
    seg = torch.cumsum(new.long(), 0) - 1  # (n,) segment id of each kept frame
    s = int(seg[-1]) + 1
    counts = torch.bincount(seg, minlength=s)
    starts = torch.nonzero(new, as_tuple=False).squeeze(1)  # position in F' of each segment start
    if merge == "mean":
        w = (1.0 / counts.double())[seg]
    else:
        pos = torch.arange(n, device=y.device) - starts[seg]  # 0-based position within segment
        length = counts[seg]
        expo = torch.where(pos == 0, length - 1, length - pos)
        w = torch.pow(torch.tensor(0.5, dtype=torch.float64, device=y.device), expo.double())
    merged = torch.zeros((s, d), dtype=torch.float64, device=y.device)
    merged.index_add_(0, seg, f.double() * w[:, None])
    ends = torch.cat([starts[1:], starts.new_tensor([n])]) - 1
    return PaperCSegments(merged.to(y.dtype), lab[starts], idx[starts], idx[ends])


def binarize_median(y: ArrayLike) -> Tensor:
    """Paper C eq. (11): per row, sort the D values, ``med = y_((D+1)/2)`` (= y_(14) for D = 27),
    ``h = 1 if y > med else 0`` (equality gives 0). For even D the lower middle is used."""
    import torch

    y = as_tensor(y).float()
    if y.shape[-1] == 0:
        raise ValueError("cannot binarise empty rows")
    s, _ = torch.sort(y, dim=-1)
    med = s[..., (y.shape[-1] - 1) // 2].unsqueeze(-1)
    return y > med


def binarize_argmax(y: ArrayLike) -> Tensor:
    """speechret's alternative to eq. (11) (opt-in, ``binarize="argmax"``; not in paper C): per
    row, the one-hot of the largest value -- for a merged segment, its pronunciation class (step
    3's argmax; the first of tied maxima, as ``torch.argmax``).

    Why: eq. (11) sets the 13 largest of the 27 scores, so 12 of a segment's 13 ones record the
    order of classes the model finds unlikely, which differs from voice to voice and is the same
    under any monotone calibration of the scores. With one-hot segments two codes differ by 2/27
    per segment whose class differs, so the sliding distance counts the segments on which two
    utterances disagree, the distance a CTC transcription compares (Graves et al., "Connectionist
    temporal classification", ICML 2006 §3.1). Chosen on validation speakers: DSPSpeech-20's 8
    Mandarin words with distinct CTC targets, fold 0's validation speakers, the 3D CNN-BiLSTM (CPU
    configuration, ``recipe=speechret_ctc``, 60 epochs): cross-speaker mAP 0.690 with eq. (11),
    0.839 with the one-hot; the top 2 / 3 / 5 / 8 classes gave 0.547 / 0.616 / 0.636 / 0.602.  Not
    a default anywhere: on the built-in synthetic corpus (the same network with
    ``recipe=speechret_ctc``, its validation voices, words and sentences) eq. (11) is better, 0.860
    against 0.715 -- synthetic voices order the unlikely classes alike -- so choose it per corpus
    on validation data (``bench/paper_c_words.py`` measures both)."""
    import torch

    y = as_tensor(y).float()
    if y.shape[-1] == 0:
        raise ValueError("cannot binarise empty rows")
    return torch.nn.functional.one_hot(y.argmax(dim=-1), y.shape[-1]).bool()


#: step 4's binarisations by name: eq. (11) (the paper's), or speechret's one-hot
BINARIZERS = {"median": binarize_median, "argmax": binarize_argmax}


def check_binarize(binarize: str, param: str = "binarize") -> str:
    """``binarize`` if it names one of :data:`BINARIZERS`, else a :class:`ConfigError` naming ``param``."""
    if binarize not in BINARIZERS:
        raise ConfigError(f"{param} must be one of {sorted(BINARIZERS)} (median: paper C eq. 11), not {binarize!r}")
    return binarize


def hash_paper_c(
    scores: ArrayLike,
    other_index: int | None = OTHER_INDEX,
    merge: str = "eq10",
    merge_across_other: bool = False,
    drop_mask: ArrayLike | None = None,
    binarize: str = "median",
) -> Tensor:
    """Paper C §4.4 steps 1-4 for one utterance: ``(T, 27)`` per-frame scores -> ``BoolTensor
    (S, 27)``, 27 bits per merged pronunciation segment (:func:`segments_paper_c` then
    :func:`binarize_median`, or with ``binarize="argmax"`` :func:`binarize_argmax`). S varies with
    the content and may be 0 (all frames "other")."""
    import torch

    to_bits = BINARIZERS[check_binarize(binarize)]
    seg = segments_paper_c(scores, other_index, merge, merge_across_other, drop_mask)
    if seg.scores.shape[0] == 0:
        return torch.zeros((0, seg.scores.shape[1]), dtype=torch.bool, device=seg.scores.device)
    return to_bits(seg.scores)


def hash_paper_c_batch(
    scores: ArrayLike,
    lengths: ArrayLike | None = None,
    drop_mask: ArrayLike | None = None,
    **kwargs: Any,
) -> list[Tensor]:
    """:func:`hash_paper_c` over a padded batch ``(B, T, 27)`` with ``lengths[B]`` (frames at
    ``t >= lengths[b]`` are ignored) and an optional ``(B, T)`` ``drop_mask``. Returns a list of
    B ``BoolTensor (S_b, 27)``."""
    y = as_tensor(scores)
    if y.dim() != 3:
        raise ValueError(f"hash_paper_c_batch expects (B, T, D), got {tuple(y.shape)}")
    b, t = y.shape[:2]
    lens = [t] * b if lengths is None else [int(v) for v in as_tensor(lengths).cpu().tolist()]
    if len(lens) != b:
        raise ValueError(f"lengths has {len(lens)} entries for a batch of {b}")
    dm = None if drop_mask is None else as_tensor(drop_mask).bool()
    return [
        hash_paper_c(y[i, : lens[i]], drop_mask=None if dm is None else dm[i, : lens[i]], **kwargs)
        for i in range(b)
    ]



def pack_groups_27(segments: ArrayLike) -> np.ndarray:
    """Paper C §4.4: each 27-bit segment code zero-padded into 32 bits -> ``uint8 (S, 4)``, the
    rows of the d = 32 FAISS binary index that proposes candidate start positions."""
    return pack_groups(segments, PAPER_C_BITS, PAPER_C_GROUP_BITS)


class PaperC(HashMethod):
    """Paper C: variable-length sequences of 27-bit segment codes, grouped sliding matching.

    ``direction`` (full-speech retrieval): ``"query_in_item"`` (default, §4.4 as written) or
    ``"symmetric"`` (see :mod:`speechret.hashing.sliding`); keyword search always slides the
    query over the item. Distances stay float64 end to end: rounding them to float32 can move a
    pair across γ.

    ``binarize`` (the one option, ``model.hash_options.binarize``; a library's manifest records
    it): ``"median"`` (eq. 11, the default) or ``"argmax"`` (:func:`binarize_argmax`, opt-in).
    Only the codes change: the 27-bit groups, FAISS index and sliding matching are the same.
    """

    name = "paper_c"
    reference = "paper C §4.4 eq. (10)-(11): merged pronunciation segments, 27 bits each by median"
    variable_length = True
    threshold_strict = False
    mode_matcher = {"keyword": "keyword", "full_speech": "keyword"}
    group_bits = PAPER_C_BITS
    packed_group_bits = PAPER_C_GROUP_BITS
    options = ("binarize",)

    def __init__(self, code_bits: int | None = PAPER_C_BITS, binarize: str = "median") -> None:
        super().__init__(PAPER_C_BITS if code_bits is None else code_bits)
        self.binarize = check_binarize(binarize, "paper_c binarize")

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> PaperC:
        """From a module's ``hash_options`` or a library manifest (one written before the option
        existed holds eq. 11 codes: ``median``)."""
        return cls(code_bits=context.get("code_bits"), binarize=context.get("binarize") or "median")

    def __repr__(self) -> str:
        return f"PaperC(binarize={self.binarize!r})"

    def codes(self, output: Any, other_index: int | None = OTHER_INDEX, merge: str = "eq10",
              merge_across_other: bool = False, drop_blank: bool = True, **options: Any) -> list[np.ndarray]:
        """``other_index``, ``merge``, ``merge_across_other``: see :func:`segments_paper_c`;
        ``drop_blank`` (default True): with an extra CTC blank (logits have one column more than
        the scores, blank last), a frame where the blank wins emits no pronunciation and is
        dropped like "other" (§4.4 step 2)."""
        scores, logits, lengths = field(output, "hash_features"), field(output, "logits"), field(output, "lengths")
        if scores is None:
            raise ValueError("paper C codes need the per-frame scores (hash_features)")
        drop = None
        if drop_blank and logits is not None and logits.shape[-1] == scores.shape[-1] + 1:
            drop = logits.argmax(dim=-1) == logits.shape[-1] - 1
        codes = hash_paper_c_batch(scores, lengths, drop_mask=drop, other_index=other_index,
                                   merge=merge, merge_across_other=merge_across_other, binarize=self.binarize)
        return [c.cpu().numpy() for c in codes]

    def concat(self, parts: Sequence[Any]) -> list[np.ndarray]:
        return [c for p in parts for c in p]

    def code_bits_of(self, codes: Any) -> int:
        return PAPER_C_BITS

    def manifest_fields(self, probe_codes: Any) -> dict[str, Any]:
        return {**super().manifest_fields(probe_codes), "binarize": self.binarize}

    def check_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        manifest.setdefault("code_bits", PAPER_C_BITS)
        check_binarize(manifest.setdefault("binarize", "median"), "manifest binarize")
        return super().check_manifest(manifest)

    def encode_rows(self, codes: Any, n: int) -> list[tuple[bytes, int | None, int | None]]:
        seqs = list(codes)
        if len(seqs) != n:
            raise ConfigError(f"{len(seqs)} code sequences for {n} items")
        out = []
        for s in seqs:
            w = as_words(np.asarray(s)).astype("<u4")
            if len(w) and int(w.max()) >> PAPER_C_BITS:
                raise ConfigError("paper_c group words must fit in 27 bits")
            out.append((w.tobytes(), len(w), None))
        return out

    def decode_rows(self, blobs: Sequence[bytes]) -> list[np.ndarray]:
        return [np.frombuffer(b, dtype="<u4").astype(np.uint32) for b in blobs]

    def matcher_nodes(self, index_kind: str, index_params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        return {"keyword": {"_target_": "speechret.search.keyword.KeywordMatcher", "index_kind": index_kind,
                            "index_params": dict(index_params) or None}}

    def n_bits(self, codes: Any) -> int | None:
        return None

    @staticmethod
    def direction_of(mode: str, direction: str | None = None) -> str:
        """Keyword search always slides the query over the item; full-speech retrieval follows
        ``direction`` (default :data:`~speechret.hashing.sliding.DEFAULT_DIRECTION`)."""
        if check_compare_mode(mode) == "keyword":
            return "query_in_item"
        return check_direction(direction or DEFAULT_DIRECTION)

    def distances(self, queries: Any, database: Any, mode: str = "full", direction: str | None = None,
                  chunk: int = 4096) -> np.ndarray:
        """float64 decision distances (§4.4 steps 1-7 in threshold-free form)."""
        return decision_distances(list(queries), list(database), self.direction_of(mode, direction))

    def retrieved(self, queries: Any, database: Any, threshold: float, mode: str = "full",
                  direction: str | None = None, distances: np.ndarray | None = None) -> np.ndarray:
        """:func:`~speechret.hashing.sliding.sliding_decisions`: the set ``search.py`` returns."""
        return sliding_decisions(list(queries), list(database), threshold, self.direction_of(mode, direction),
                                 distances=distances)

    def ranking_distances(self, queries: Any, database: Any) -> np.ndarray:
        """Validation mAP ranks by the symmetric mean sliding distance (every pair comparable)."""
        return pairwise_sliding_distance(list(queries), list(database), symmetric=True)

    def ber(self, queries: Any, database: Any) -> np.ndarray:
        return self.distances(queries, database, "full")

    def describe(self, direction: str | None = None) -> dict[str, Any]:
        d = check_direction(direction or DEFAULT_DIRECTION)
        return {"decision": f"sliding decision distance <= gamma (float64), full-speech direction {d}",
                "binarize": self.binarize}


__all__ = ["BINARIZERS", "OTHER_INDEX", "PAPER_C_BITS", "PAPER_C_GROUP_BITS", "PaperC", "PaperCSegments",
           "binarize_argmax", "binarize_median", "check_binarize", "hash_paper_c", "hash_paper_c_batch",
           "pack_groups_27", "segments_paper_c"]
