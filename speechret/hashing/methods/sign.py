"""speechret's own method (not from the papers): the sign of the tanh hash layer.

``h = 1 if u > 0`` over the K tanh units of the hash layer — the sign of the relaxed code that
DPSH / CSQ-style losses train (Li et al. 2016, "Feature learning based deep supervised hashing
with pairwise labels"; Yuan et al. 2020, "Central similarity quantization", see
:mod:`speechret.models.losses`); compared by BER as paper A's eq. (8).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from speechret.hashing.bits import ArrayLike, as_tensor, field
from speechret.hashing.method import HashMethod

if TYPE_CHECKING:
    from torch import Tensor


def hash_sign(u: ArrayLike) -> Tensor:
    """speechret: ``bool (B, K)`` = ``u > 0`` for the tanh hash-layer output ``u`` (B, K)."""
    u = as_tensor(u)
    if u.ndim != 2:
        raise ValueError(f"hash_sign expects (B, K), got {tuple(u.shape)}")
    return u > 0


class SignHash(HashMethod):
    """speechret: sign of the tanh hash layer, compared by BER."""

    name = "speechret"
    reference = "speechret: sign of the tanh hash layer (u > 0)"
    mode_matcher = {"topk": "main", "threshold": "main"}

    def codes(self, output: Any, **options: Any) -> np.ndarray:
        return hash_sign(field(output, "hash_features")).cpu().numpy()


__all__ = ["SignHash", "hash_sign"]
