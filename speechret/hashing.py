"""Hash-code construction for papers A, B and C, bit packing, Hamming distance and BER.

This module is the ONE code path from a model's :class:`~speechret.models.components.ModelOutput`
to binary codes (:func:`codes_from_output`), shared by training-time evaluation, indexing and
search, so a query and the library can never be hashed differently.

Codes are numpy ``bool`` arrays (one row per item, or per segment for paper C). For FAISS binary
indexes they are packed with :func:`pack_bits`, whose bit order is FAISS's own: bit ``i`` of a
code lives in byte ``i // 8`` at bit position ``i % 8`` (least significant first), the layout of
``faiss.fvecs2bitvecs`` / ``np.packbits(bitorder="little")`` (checked in the tests).

Equations
---------
* Paper A (000) §4.4 step 3, eq. (7): ``h(i) = 1 if H(i) > H_median else 0`` over the M = 384
  Dense outputs; BER (normalised Hamming distance) is paper A's eq. (8). (Paper A's eq. (11)-(12)
  are AP / mAP, not BER.)
* Paper B (001) §IV-D: semantic hash h2 by eq. (11)-(12): ``h2 = 1 if tanh(omega) >= I_mean``;
  category hash h1 by eq. (13)-(15): one-hot of argmax softmax; §IV-E step 5: code = h1 || h2;
  BER is eq. (16).
* Paper C (002) §4.4 steps 1-4: drop frames whose argmax is "other" (c_27), merge adjacent frames
  of the same argmax with eq. (10), binarise every merged frame against its median
  ``med = y_(14)`` by eq. (11) (``h = 1 if y > med``) -> 27 bits per segment; retrieval groups of
  27 bits (§4.4 retrieval steps 1-7) go into a d = 32 FAISS binary index via :func:`pack_groups_27`.
  "Adjacent" means adjacent in the network's output (``merge_across_other=False``, default): a
  run of dropped "other"/blank frames ends a segment, so the segments are exactly the labels
  CTC's collapsing map reads from the same frames ("ba ba" stays two segments), see
  :func:`segments_paper_c`.
* speechret's own method (not from the papers): ``h = 1 if u > 0`` over the K tanh units of the
  hash layer (the sign of the relaxed code that DPSH / CSQ-style losses train, see
  :mod:`speechret.models.losses`); BER as paper A's eq. (8).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

ArrayLike = Tensor | np.ndarray

#: paper C: index of the "other" class c_27 (silence, breath, noise) in the 27 scores.
OTHER_INDEX = 26
#: paper C: bits per segment / FAISS group width.
PAPER_C_BITS = 27
PAPER_C_GROUP_BITS = 32


def _as_tensor(x: ArrayLike) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach()
    return torch.from_numpy(np.asarray(x))


def _as_bool_numpy(bits: ArrayLike) -> np.ndarray:
    if isinstance(bits, Tensor):
        bits = bits.detach().cpu().numpy()
    bits = np.asarray(bits)
    if bits.dtype != np.bool_:
        if not np.isin(bits, (0, 1)).all():
            raise ValueError("bits must be boolean or 0/1 valued")
        bits = bits.astype(bool)
    return bits


def median_lastdim(x: Tensor) -> Tensor:
    """Median over the last axis with numpy semantics (midpoint of the two middle values when
    the count is even), keepdim. ``torch.median`` returns the lower middle instead."""
    s, _ = torch.sort(x, dim=-1)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("median of an empty vector")
    lo = s[..., (n - 1) // 2]
    hi = s[..., n // 2]
    return ((lo + hi) / 2).unsqueeze(-1)


# --------------------------------------------------------------------------------------- paper A
def hash_paper_a(H: ArrayLike) -> Tensor:
    """Paper A eq. (7): ``h(i) = 1 if H(i) > H_median, else 0`` for the M Dense outputs.

    ``H``: ``(M,)`` or ``(B, M)`` deep features (the Dense-384 ReLU activations). The median is
    taken per row over its M values; for even M it is the midpoint of the two middle values
    (``np.median``), which, without ties, sets exactly M/2 bits. Ties are resolved by the strict
    ``>``: values equal to the median give 0. This matters for paper A because the features are
    ReLU outputs: when more than half of a row is exactly 0 the median is 0 and the code is simply
    "which units fired". Returns a ``BoolTensor`` of the same shape.
    """
    H = _as_tensor(H).float()
    if H.dim() not in (1, 2):
        raise ValueError(f"hash_paper_a expects (M,) or (B, M), got {tuple(H.shape)}")
    return H > median_lastdim(H)


# --------------------------------------------------------------------------------------- paper B
class PaperBCodes(NamedTuple):
    """Paper B §IV-D/E codes: ``h1`` category one-hot (B, C), ``h2`` semantic hash (B, K),
    ``code`` = h1 || h2 (B, C + K) (§IV-E step 5, category hash first)."""

    h1: Tensor
    h2: Tensor
    code: Tensor


def hash_paper_b(
    omega_tanh: ArrayLike,
    logits: ArrayLike,
    threshold: ArrayLike | float | None = None,
) -> PaperBCodes:
    """Paper B's two codes.

    * h2, eq. (11)-(12): ``h2 = sign(tanh(omega) - I_mean)`` i.e. ``1 if tanh(omega) >= I_mean
      else 0`` (eq. 12 puts equality on the 1 side). "I_mean represents the mean value of the
      semantic feature vector": by default the mean of each row's K values (``threshold=None``).
      A dataset-level threshold (e.g. the per-bit training mean, shape (K,), or a scalar such as
      0) can be passed instead; it must then be the same for library and queries.
    * h1, eq. (13)-(15): one-hot of ``argmax(softmax(logits))`` = argmax of the logits (softmax is
      monotone); C bits.

    ``omega_tanh``: ``(B, K)`` (or ``(K,)``) tanh hash-layer activations; ``logits``: ``(B, C)``
    (or ``(C,)``). Returns :class:`PaperBCodes` of ``BoolTensor`` s.
    """
    w = _as_tensor(omega_tanh).float()
    z = _as_tensor(logits).float()
    squeeze = w.dim() == 1
    if squeeze:
        w, z = w.unsqueeze(0), z.unsqueeze(0)
    if w.dim() != 2 or z.dim() != 2 or w.shape[0] != z.shape[0]:
        raise ValueError(f"hash_paper_b expects (B, K) and (B, C), got {tuple(w.shape)}, {tuple(z.shape)}")
    if threshold is None:
        thr = w.mean(dim=-1, keepdim=True)
    else:
        thr = torch.as_tensor(threshold, dtype=torch.float32, device=w.device)
    h2 = w >= thr
    h1 = torch.zeros_like(z, dtype=torch.bool)
    h1.scatter_(1, z.argmax(dim=1, keepdim=True), True)
    code = torch.cat([h1, h2], dim=1)
    if squeeze:
        return PaperBCodes(h1[0], h2[0], code[0])
    return PaperBCodes(h1, h2, code)


def split_paper_b(code: ArrayLike, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Split paper B codes ``(..., C + K)`` back into ``(h1, h2)``; ``h1`` is the first C bits."""
    code = _as_bool_numpy(code)
    return code[..., :n_classes], code[..., n_classes:]


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
    if merge not in ("eq10", "mean"):
        raise ValueError(f"merge must be 'eq10' (paper C eq. 10) or 'mean', got {merge!r}")
    y = _as_tensor(scores).float()
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
        dm = _as_tensor(drop_mask).to(y.device).bool()
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
    y = _as_tensor(y).float()
    if y.shape[-1] == 0:
        raise ValueError("cannot binarise empty rows")
    s, _ = torch.sort(y, dim=-1)
    med = s[..., (y.shape[-1] - 1) // 2].unsqueeze(-1)
    return y > med


def hash_paper_c(
    scores: ArrayLike,
    other_index: int | None = OTHER_INDEX,
    merge: str = "eq10",
    merge_across_other: bool = False,
    drop_mask: ArrayLike | None = None,
) -> Tensor:
    """Paper C §4.4 steps 1-4 for one utterance: ``(T, 27)`` per-frame scores -> ``BoolTensor
    (S, 27)``, 27 bits per merged pronunciation segment (:func:`segments_paper_c` then
    :func:`binarize_median`). S varies with the content and may be 0 (all frames "other")."""
    seg = segments_paper_c(scores, other_index, merge, merge_across_other, drop_mask)
    if seg.scores.shape[0] == 0:
        return torch.zeros((0, seg.scores.shape[1]), dtype=torch.bool, device=seg.scores.device)
    return binarize_median(seg.scores)


def hash_paper_c_batch(
    scores: ArrayLike,
    lengths: ArrayLike | None = None,
    drop_mask: ArrayLike | None = None,
    **kwargs: Any,
) -> list[Tensor]:
    """:func:`hash_paper_c` over a padded batch ``(B, T, 27)`` with ``lengths[B]`` (frames at
    ``t >= lengths[b]`` are ignored) and an optional ``(B, T)`` ``drop_mask``. Returns a list of
    B ``BoolTensor (S_b, 27)``."""
    y = _as_tensor(scores)
    if y.dim() != 3:
        raise ValueError(f"hash_paper_c_batch expects (B, T, D), got {tuple(y.shape)}")
    b, t = y.shape[:2]
    lens = [t] * b if lengths is None else [int(v) for v in _as_tensor(lengths).cpu().tolist()]
    if len(lens) != b:
        raise ValueError(f"lengths has {len(lens)} entries for a batch of {b}")
    dm = None if drop_mask is None else _as_tensor(drop_mask).bool()
    return [
        hash_paper_c(y[i, : lens[i]], drop_mask=None if dm is None else dm[i, : lens[i]], **kwargs)
        for i in range(b)
    ]


# ------------------------------------------------------------------------------ packing/distance
def pack_bits(bits: ArrayLike) -> np.ndarray:
    """Pack ``(..., D)`` bits along the last axis into ``uint8 (..., ceil(D / 8))`` in FAISS's
    binary layout: bit ``i`` -> byte ``i // 8``, bit position ``i % 8`` (LSB first); the last
    byte is zero-padded. Hamming distances between packed rows equal those between the bits."""
    b = _as_bool_numpy(bits)
    return np.packbits(b, axis=-1, bitorder="little")


def unpack_bits(packed: ArrayLike, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``uint8 (..., ceil(n_bits / 8))`` -> ``bool (..., n_bits)``."""
    p = packed.detach().cpu().numpy() if isinstance(packed, Tensor) else np.asarray(packed)
    if p.dtype != np.uint8:
        raise ValueError(f"packed codes must be uint8, got {p.dtype}")
    if p.shape[-1] * 8 < n_bits:
        raise ValueError(f"{p.shape[-1]} bytes cannot hold {n_bits} bits")
    return np.unpackbits(p, axis=-1, count=n_bits, bitorder="little").astype(bool)


def pack_groups(segments: ArrayLike, group_bits: int = PAPER_C_BITS,
                padded_bits: int = PAPER_C_GROUP_BITS) -> np.ndarray:
    """Zero-pad each ``group_bits``-bit row to ``padded_bits`` (a multiple of 8) and pack it:
    ``(S, group_bits)`` -> ``uint8 (S, padded_bits / 8)``. The padding bits are 0 in every row,
    so Hamming distances are unchanged."""
    b = _as_bool_numpy(segments)
    if b.ndim != 2 or b.shape[1] != group_bits:
        raise ValueError(f"segments must be (S, {group_bits}), got {b.shape}")
    if padded_bits % 8 or padded_bits < group_bits:
        raise ValueError(f"padded_bits must be a multiple of 8 and >= {group_bits}, got {padded_bits}")
    out = np.zeros((b.shape[0], padded_bits), dtype=bool)
    out[:, :group_bits] = b
    return pack_bits(out)


def pack_groups_27(segments: ArrayLike) -> np.ndarray:
    """Paper C §4.4: each 27-bit segment code zero-padded into 32 bits -> ``uint8 (S, 4)``, the
    rows of the d = 32 FAISS binary index that proposes candidate start positions."""
    return pack_groups(segments, PAPER_C_BITS, PAPER_C_GROUP_BITS)


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _POPCOUNT8[x.view(np.uint8)].reshape(*x.shape, -1).sum(-1)  # pragma: no cover


def hamming(a_packed: ArrayLike, b_packed: ArrayLike, pairwise: bool = True,
            chunk_bytes: int = 1 << 26) -> np.ndarray:
    """Hamming distances between packed codes (``uint8``, same number of bytes per row).

    ``pairwise=True``: ``(N, nb) x (M, nb) -> int64 (N, M)`` (computed in row chunks of at most
    ``chunk_bytes`` intermediate bytes). ``pairwise=False``: row-by-row, shapes broadcast,
    ``(..., nb) -> (...)``. Equal to FAISS ``IndexBinaryFlat`` distances for FAISS-packed codes.
    """
    a = a_packed.detach().cpu().numpy() if isinstance(a_packed, Tensor) else np.asarray(a_packed)
    b = b_packed.detach().cpu().numpy() if isinstance(b_packed, Tensor) else np.asarray(b_packed)
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"hamming expects uint8 packed codes, got {a.dtype}, {b.dtype}")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"code widths differ: {a.shape[-1]} vs {b.shape[-1]} bytes")
    nb = a.shape[-1]
    if not pairwise:
        return _popcount(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int64)
    a2, b2 = np.atleast_2d(a), np.atleast_2d(b)
    if a2.ndim != 2 or b2.ndim != 2:
        raise ValueError("pairwise hamming expects 2-D (N, nbytes) and (M, nbytes) arrays")
    if nb % 8 == 0 and nb:  # 64-bit words: 8x fewer popcounts
        a2 = np.ascontiguousarray(a2).view(np.uint64)
        b2 = np.ascontiguousarray(b2).view(np.uint64)
    n, m = a2.shape[0], b2.shape[0]
    out = np.empty((n, m), dtype=np.int64)
    rows = max(1, chunk_bytes // max(1, m * nb))
    for s in range(0, n, rows):
        x = np.bitwise_xor(a2[s : s + rows, None, :], b2[None, :, :])
        out[s : s + rows] = _popcount(x).sum(axis=-1, dtype=np.int64)
    return out


def ber(a_bits: ArrayLike, b_bits: ArrayLike, pairwise: bool = False) -> np.ndarray:
    """Bit error rate = normalised Hamming distance ``D = (1/M) sum_i a(i) XOR b(i)``
    (paper A eq. (8), paper B eq. (16); paper C uses the same per-27-bit-group ratio).

    ``a_bits``, ``b_bits``: unpacked bits ``(..., M)``. ``pairwise=False``: row-by-row with
    broadcasting -> ``(...)``; ``pairwise=True``: ``(N, M) x (K, M) -> (N, K)``. float64 in [0, 1].
    """
    a, b = _as_bool_numpy(a_bits), _as_bool_numpy(b_bits)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"code lengths differ: {a.shape[-1]} vs {b.shape[-1]}")
    m = a.shape[-1]
    if m == 0:
        raise ValueError("BER of empty codes is undefined")
    if pairwise:
        return hamming(pack_bits(np.atleast_2d(a)), pack_bits(np.atleast_2d(b))) / m
    return np.not_equal(a, b).sum(axis=-1) / m


# ------------------------------------------------------------------------------ one entry point
@dataclass(frozen=True)
class HashSpec:
    """How one paper turns a :class:`ModelOutput` into codes.

    ``variable_length``: False -> :meth:`codes` returns ``bool (B, n_bits)``; True -> a list of
    ``bool (S_b, group_bits)`` (paper C). ``group_bits`` / ``packed_group_bits``: width of one
    code row and of its packed FAISS row.
    """

    name: str
    reference: str
    variable_length: bool
    fn: Callable[..., Any]
    group_bits: int | None = None
    packed_group_bits: int | None = None

    def codes(self, output: Any, **kwargs: Any) -> np.ndarray | list[np.ndarray]:
        return self.fn(output, **kwargs)


def _field(output: Any, name: str) -> Any:
    if isinstance(output, Mapping):
        return output.get(name)
    return getattr(output, name, None)


def _codes_a(output: Any) -> np.ndarray:
    return hash_paper_a(_field(output, "hash_features")).cpu().numpy()


def _codes_b(output: Any, threshold: ArrayLike | float | None = None) -> np.ndarray:
    return hash_paper_b(_field(output, "hash_features"), _field(output, "logits"), threshold).code.cpu().numpy()


def hash_sign(u: ArrayLike) -> Tensor:
    """speechret: ``bool (B, K)`` = ``u > 0`` for the tanh hash-layer output ``u`` (B, K)."""
    u = _as_tensor(u)
    if u.ndim != 2:
        raise ValueError(f"hash_sign expects (B, K), got {tuple(u.shape)}")
    return u > 0


def _codes_sign(output: Any) -> np.ndarray:
    return hash_sign(_field(output, "hash_features")).cpu().numpy()


def _codes_c(
    output: Any,
    other_index: int | None = OTHER_INDEX,
    merge: str = "eq10",
    merge_across_other: bool = False,
    drop_blank: bool = True,
) -> list[np.ndarray]:
    scores = _field(output, "hash_features")
    logits = _field(output, "logits")
    lengths = _field(output, "lengths")
    if scores is None:
        raise ValueError("paper C codes need the per-frame scores (hash_features)")
    drop = None
    # With an extra CTC blank (logits have one column more than the scores, blank last), a frame
    # where the blank wins emits no pronunciation: treat it like "other" (§4.4 step 2).
    if drop_blank and logits is not None and logits.shape[-1] == scores.shape[-1] + 1:
        drop = logits.argmax(dim=-1) == logits.shape[-1] - 1
    codes = hash_paper_c_batch(scores, lengths, drop_mask=drop, other_index=other_index,
                               merge=merge, merge_across_other=merge_across_other)
    return [c.cpu().numpy() for c in codes]


HASHERS: dict[str, HashSpec] = {
    "paper_a": HashSpec("paper_a", "paper A §4.4 eq. (7): Dense-384 > row median", False, _codes_a),
    "paper_b": HashSpec("paper_b", "paper B §IV-D/E eq. (11)-(15): one-hot(argmax) || tanh >= row mean",
                        False, _codes_b),
    "paper_c": HashSpec("paper_c", "paper C §4.4 eq. (10)-(11): merged pronunciation segments, 27 bits "
                        "each by median", True, _codes_c, PAPER_C_BITS, PAPER_C_GROUP_BITS),
    "speechret": HashSpec("speechret", "speechret: sign of the tanh hash layer (u > 0)", False, _codes_sign),
}


def codes_from_output(method: str, model_output: Any, **kwargs: Any) -> np.ndarray | list[np.ndarray]:
    """The single entry point from a model output to binary codes.

    ``method``: a key of :data:`HASHERS` (``"paper_a"``, ``"paper_b"``, ``"paper_c"``; a model's
    ``hash_method`` attribute names its own). ``model_output``: a
    :class:`~speechret.models.components.ModelOutput` or a mapping with the same keys.
    Keyword options: paper B ``threshold`` (see :func:`hash_paper_b`); paper C ``other_index``,
    ``merge``, ``merge_across_other`` (see :func:`segments_paper_c`) and ``drop_blank`` (default
    True: drop frames whose overall argmax is the CTC blank, when the logits carry one).

    Returns ``bool (B, n_bits)`` for papers A / B (B: category bits first) and a list of B
    ``bool (S_b, 27)`` arrays for paper C.
    """
    try:
        spec = HASHERS[method]
    except KeyError:
        raise ValueError(f"unknown hash method {method!r}; choose one of {sorted(HASHERS)}") from None
    return spec.codes(model_output, **kwargs)


__all__ = [
    "HASHERS",
    "HashSpec",
    "OTHER_INDEX",
    "PaperBCodes",
    "PaperCSegments",
    "ber",
    "binarize_median",
    "codes_from_output",
    "hamming",
    "hash_paper_a",
    "hash_sign",
    "hash_paper_b",
    "hash_paper_c",
    "hash_paper_c_batch",
    "median_lastdim",
    "pack_bits",
    "pack_groups",
    "pack_groups_27",
    "segments_paper_c",
    "split_paper_b",
    "unpack_bits",
]
