"""Paper A (000) §4.4 step 3, eq. (7): the median-threshold hash of the Dense-384 features.

``h(i) = 1 if H(i) > H_median else 0`` over the M = 384 Dense outputs; BER (normalised Hamming
distance, paper A eq. (8)) ranks and thresholds (``BER < T``, §5.3). Searched by top-k and by
threshold through a FAISS binary index (:class:`speechret.search.matchers.ThresholdMatcher`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from speechret.hashing.bits import ArrayLike, as_tensor, field, median_lastdim
from speechret.hashing.method import HashMethod

if TYPE_CHECKING:
    from torch import Tensor


def hash_paper_a(H: ArrayLike) -> Tensor:
    """Paper A eq. (7): ``h(i) = 1 if H(i) > H_median, else 0`` for the M Dense outputs.

    ``H``: ``(M,)`` or ``(B, M)`` deep features (the Dense-384 ReLU activations). The median is
    taken per row over its M values; for even M it is the midpoint of the two middle values
    (``np.median``), which, without ties, sets exactly M/2 bits. Ties are resolved by the strict
    ``>``: values equal to the median give 0. This matters for paper A because the features are
    ReLU outputs: when more than half of a row is exactly 0 the median is 0 and the code is simply
    "which units fired". Returns a ``BoolTensor`` of the same shape.
    """
    H = as_tensor(H).float()
    if H.dim() not in (1, 2):
        raise ValueError(f"hash_paper_a expects (M,) or (B, M), got {tuple(H.shape)}")
    return H > median_lastdim(H)



class PaperA(HashMethod):
    """Paper A: Dense-384 > row median (eq. 7), compared by BER (eq. 8)."""

    name = "paper_a"
    reference = "paper A §4.4 eq. (7): Dense-384 > row median"
    mode_matcher = {"topk": "main", "threshold": "main"}

    def codes(self, output: Any, **options: Any) -> np.ndarray:
        return hash_paper_a(field(output, "hash_features")).cpu().numpy()


__all__ = ["PaperA", "hash_paper_a"]
