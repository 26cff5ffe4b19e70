"""Hash codes: construction per method, bits, distances, sliding matching, checkpoint hasher.

Layout:

* :mod:`~speechret.hashing.method` — the :class:`HashMethod` object (codes, width, storage,
  distances, matchers and search modes of one method) and its lookup :func:`get_hash_method`;
* :mod:`~speechret.hashing.methods` — one file per method: ``paper_a`` (paper A §4.4 eq. 7),
  ``paper_b`` (paper B §IV-D/E eq. 11-15, two-stage distance §IV-F), ``paper_c`` (paper C §4.4
  eq. 10-11, grouped 27-bit codes), ``sign`` (speechret's own);
* :mod:`~speechret.hashing.bits` — packing in FAISS's bit order, Hamming distance, BER;
* :mod:`~speechret.hashing.sliding` — paper C's grouped sliding matching (numba kernels);
* :mod:`~speechret.hashing.ranking` — retrieval ranking metrics (AP / mAP) over distances;
* :mod:`~speechret.hashing.hasher` — checkpoint + audio → codes.

:func:`codes_from_output` is the ONE code path from a model output to binary codes, shared by
training-time evaluation, indexing and search, so a query and the library can never be hashed
differently.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from speechret.hashing.bits import ber, ber_matrix, hamming, median_lastdim, pack_bits, pack_groups, unpack_bits
from speechret.hashing.method import HashMethod, get_hash_method, hash_method_class, hash_method_names, take
from speechret.hashing.methods.paper_a import hash_paper_a
from speechret.hashing.methods.paper_b import PaperBCodes, category_of, hash_paper_b, split_paper_b
from speechret.hashing.methods.paper_c import (
    OTHER_INDEX,
    PAPER_C_BITS,
    PAPER_C_GROUP_BITS,
    PaperCSegments,
    binarize_argmax,
    binarize_median,
    hash_paper_c,
    hash_paper_c_batch,
    pack_groups_27,
    segments_paper_c,
)
from speechret.hashing.methods.sign import hash_sign


def codes_from_output(method: str | HashMethod, model_output: Any, **kwargs: Any) -> np.ndarray | list[np.ndarray]:
    """The single entry point from a model output to binary codes.

    ``method``: a :class:`HashMethod` or its name (a model's ``hash_method`` attribute names its
    own). ``model_output``: a :class:`~speechret.models.components.ModelOutput` or a mapping with
    the same keys. Keyword options go to the method's :meth:`HashMethod.codes` (paper B
    ``threshold``; paper C ``other_index``, ``merge``, ``merge_across_other``, ``drop_blank``).

    Returns ``bool (B, n_bits)`` for fixed-length methods and a list of B ``bool (S_b, 27)``
    arrays for paper C.
    """
    return get_hash_method(method).codes(model_output, **kwargs)


__all__ = [
    "HashMethod", "OTHER_INDEX", "PAPER_C_BITS", "PAPER_C_GROUP_BITS", "PaperBCodes", "PaperCSegments", "ber",
    "ber_matrix", "binarize_argmax", "binarize_median", "category_of", "codes_from_output", "get_hash_method",
    "hamming", "hash_method_class", "hash_method_names", "hash_paper_a", "hash_paper_b", "hash_paper_c",
    "hash_paper_c_batch", "hash_sign", "median_lastdim", "pack_bits", "pack_groups", "pack_groups_27",
    "segments_paper_c", "split_paper_b", "take", "unpack_bits",
]
