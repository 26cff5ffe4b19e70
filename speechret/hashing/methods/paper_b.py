"""Paper B (001) §IV-D/E: category hash ``h1`` || semantic hash ``h2``, two-stage retrieval.

* h2 by eq. (11)-(12): ``h2 = 1 if tanh(omega) >= I_mean``;
* h1 by eq. (13)-(15): one-hot of argmax softmax; §IV-E step 5: code = h1 || h2;
* distance: §IV-F's two-stage order — BER (eq. 16) over ``h2``, plus 1 when the categories
  differ, so items of the query's predicted category always rank first; a threshold τ then
  retrieves "same category and BER(h2) < τ".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from speechret.errors import ConfigError
from speechret.hashing.bits import ArrayLike, as_bool_numpy, as_tensor, ber_matrix, field
from speechret.hashing.method import HashMethod

if TYPE_CHECKING:
    from torch import Tensor


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
    import torch

    w = as_tensor(omega_tanh).float()
    z = as_tensor(logits).float()
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
    code = as_bool_numpy(code)
    return code[..., :n_classes], code[..., n_classes:]




def category_of(h1: np.ndarray) -> np.ndarray:
    """Category index of each one-hot ``h1`` row (argmax; paper B eq. (15))."""
    return np.asarray(h1, dtype=bool).argmax(axis=-1).astype(np.int64)


class PaperB(HashMethod):
    """Paper B: ``h1 || h2`` (C + K bits) with the two-stage distance of §IV-F."""

    name = "paper_b"
    reference = "paper B §IV-D/E eq. (11)-(15): one-hot(argmax) || tanh >= row mean"
    mode_matcher = {"topk": "main", "threshold": "main", "two_stage": "two_stage"}

    def __init__(self, code_bits: int | None = None, n_classes: int = 0) -> None:
        super().__init__(code_bits)
        self.n_classes = int(n_classes or 0)

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> PaperB:
        nc = context.get("n_classes") or (context.get("hash") or {}).get("n_classes") or 0
        return cls(code_bits=context.get("code_bits"), n_classes=nc)

    def __repr__(self) -> str:
        return f"PaperB(code_bits={self.code_bits}, n_classes={self.n_classes})"

    def codes(self, output: Any, threshold: ArrayLike | float | None = None, **options: Any) -> np.ndarray:
        return hash_paper_b(field(output, "hash_features"), field(output, "logits"), threshold).code.cpu().numpy()

    @property
    def category_bits(self) -> int:
        return self.n_classes

    def manifest_fields(self, probe_codes: Any) -> dict[str, Any]:
        return {**super().manifest_fields(probe_codes), "n_classes": self.n_classes}

    def check_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        super().check_manifest(manifest)
        nc = manifest.get("n_classes") or (manifest.get("hash") or {}).get("n_classes")
        if not isinstance(nc, int) or not 0 < nc < manifest["code_bits"]:
            raise ConfigError("paper_b needs n_classes (0 < n_classes < code_bits)")
        manifest["n_classes"] = nc
        self.n_classes = nc
        return manifest

    def category(self, bits: np.ndarray) -> list[int | None]:
        return [int(c) for c in category_of(bits[:, : self.n_classes])]

    def _pair_distances(self, q: np.ndarray, db: np.ndarray) -> np.ndarray:
        k = self.n_classes
        if k <= 0:
            return ber_matrix(q, db)
        same = category_of(q[:, :k])[:, None] == category_of(db[:, :k])[None, :]
        return ber_matrix(q[:, k:], db[:, k:]) + (~same).astype(np.float32)

    def matcher_nodes(self, index_kind: str, index_params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        return {**super().matcher_nodes(index_kind, index_params),
                "two_stage": {"_target_": "speechret.search.matchers.TwoStageMatcher", "n_classes": self.n_classes,
                              "d_bits": self.code_bits, "kind": index_kind, **dict(index_params)}}


__all__ = ["PaperB", "PaperBCodes", "category_of", "hash_paper_b", "split_paper_b"]
