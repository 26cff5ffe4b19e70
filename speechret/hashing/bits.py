"""Bit codes: packing in FAISS's binary layout, Hamming distance, BER.

Shared by every hash method (:mod:`speechret.hashing.methods`). Codes are numpy ``bool`` arrays
(one row per item, or per segment for paper C). For FAISS binary indexes they are packed with
:func:`pack_bits`, whose bit order is FAISS's own: bit ``i`` of a code lives in byte ``i // 8`` at
bit position ``i % 8`` (least significant first), the layout of ``faiss.fvecs2bitvecs`` /
``np.packbits(bitorder="little")`` (checked in the tests). BER (normalised Hamming distance) is
paper A's eq. (8) and paper B's eq. (16).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported where a function needs it: the keyless service never does
    from torch import Tensor

ArrayLike = "Tensor | np.ndarray"


def is_tensor(x: Any) -> bool:
    """``isinstance(x, torch.Tensor)`` without importing torch (no tensor exists before it is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def as_tensor(x: ArrayLike) -> Tensor:
    if is_tensor(x):
        return x.detach()
    import torch

    return torch.from_numpy(np.asarray(x))


def as_bool_numpy(bits: ArrayLike) -> np.ndarray:
    if is_tensor(bits):
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
    import torch

    s, _ = torch.sort(x, dim=-1)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("median of an empty vector")
    lo = s[..., (n - 1) // 2]
    hi = s[..., n // 2]
    return ((lo + hi) / 2).unsqueeze(-1)



# ------------------------------------------------------------------------------ packing/distance
def pack_bits(bits: ArrayLike) -> np.ndarray:
    """Pack ``(..., D)`` bits along the last axis into ``uint8 (..., ceil(D / 8))`` in FAISS's
    binary layout: bit ``i`` -> byte ``i // 8``, bit position ``i % 8`` (LSB first); the last
    byte is zero-padded. Hamming distances between packed rows equal those between the bits."""
    b = as_bool_numpy(bits)
    return np.packbits(b, axis=-1, bitorder="little")


def unpack_bits(packed: ArrayLike, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``uint8 (..., ceil(n_bits / 8))`` -> ``bool (..., n_bits)``."""
    p = packed.detach().cpu().numpy() if is_tensor(packed) else np.asarray(packed)
    if p.dtype != np.uint8:
        raise ValueError(f"packed codes must be uint8, got {p.dtype}")
    if p.shape[-1] * 8 < n_bits:
        raise ValueError(f"{p.shape[-1]} bytes cannot hold {n_bits} bits")
    return np.unpackbits(p, axis=-1, count=n_bits, bitorder="little").astype(bool)


def pack_groups(segments: ArrayLike, group_bits: int, padded_bits: int) -> np.ndarray:
    """Zero-pad each ``group_bits``-bit row to ``padded_bits`` (a multiple of 8) and pack it:
    ``(S, group_bits)`` -> ``uint8 (S, padded_bits / 8)``. The padding bits are 0 in every row,
    so Hamming distances are unchanged."""
    b = as_bool_numpy(segments)
    if b.ndim != 2 or b.shape[1] != group_bits:
        raise ValueError(f"segments must be (S, {group_bits}), got {b.shape}")
    if padded_bits % 8 or padded_bits < group_bits:
        raise ValueError(f"padded_bits must be a multiple of 8 and >= {group_bits}, got {padded_bits}")
    out = np.zeros((b.shape[0], padded_bits), dtype=bool)
    out[:, :group_bits] = b
    return pack_bits(out)


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
    a = a_packed.detach().cpu().numpy() if is_tensor(a_packed) else np.asarray(a_packed)
    b = b_packed.detach().cpu().numpy() if is_tensor(b_packed) else np.asarray(b_packed)
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
    a, b = as_bool_numpy(a_bits), as_bool_numpy(b_bits)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"code lengths differ: {a.shape[-1]} vs {b.shape[-1]}")
    m = a.shape[-1]
    if m == 0:
        raise ValueError("BER of empty codes is undefined")
    if pairwise:
        return hamming(pack_bits(np.atleast_2d(a)), pack_bits(np.atleast_2d(b))) / m
    return np.not_equal(a, b).sum(axis=-1) / m



def ber_matrix(q: ArrayLike, db: ArrayLike) -> np.ndarray:
    """``float32 (Q, N)`` BER between every pair of fixed-length codes ``bool (Q, M)`` x
    ``bool (N, M)`` (paper A eq. (8)), as two matrix products (fast on CPU and GPU)."""
    import torch

    qf = torch.from_numpy(np.asarray(q, dtype=np.float32))
    df = torch.from_numpy(np.asarray(db, dtype=np.float32))
    if qf.ndim != 2 or df.ndim != 2 or qf.shape[1] != df.shape[1]:
        raise ValueError(f"ber_matrix expects (Q, M) and (N, M) codes, got {tuple(qf.shape)}, {tuple(df.shape)}")
    return ((qf @ (1 - df).T + (1 - qf) @ df.T) / max(1, qf.shape[1])).numpy()


def field(output: Any, name: str) -> Any:
    """``output.name`` of a :class:`~speechret.models.components.ModelOutput` or a mapping."""
    if isinstance(output, Mapping):
        return output.get(name)
    return getattr(output, name, None)


__all__ = ["ArrayLike", "as_bool_numpy", "as_tensor", "ber", "ber_matrix", "field", "hamming", "is_tensor",
           "median_lastdim", "pack_bits", "pack_groups", "unpack_bits"]
