"""Hash construction of papers A, B, C; packing in FAISS's bit order; Hamming distance; BER."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from speechret.hashing import (
    hash_method_class,
    hash_method_names,
    ber,
    binarize_median,
    codes_from_output,
    hamming,
    hash_paper_a,
    hash_paper_b,
    hash_paper_c,
    hash_paper_c_batch,
    pack_bits,
    pack_groups_27,
    segments_paper_c,
    split_paper_b,
    unpack_bits,
)
from speechret.models.components import ModelOutput

# ----------------------------------------------------------------------------------- paper A


def test_paper_a_median_even_row():
    # sorted: 1 2 3 5 7 9 -> median (3 + 5) / 2 = 4
    H = torch.tensor([[1.0, 5.0, 3.0, 9.0, 2.0, 7.0]])
    assert hash_paper_a(H).tolist() == [[False, True, False, True, False, True]]


def test_paper_a_median_odd_row_and_1d():
    # sorted: 0.1 0.2 0.4 0.8 1.6 -> median 0.4, strictly greater
    H = torch.tensor([0.4, 1.6, 0.1, 0.8, 0.2])
    assert hash_paper_a(H).tolist() == [False, True, False, True, False]


def test_paper_a_ties_relu_zeros_strictly_greater():
    # a ReLU row with more than half zeros: median 0, only the fired units get 1
    H = torch.tensor([[0.0, 0.0, 0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    assert hash_paper_a(H).tolist() == [[False, False, False, False, True, True], [False] * 6]


def test_paper_a_rows_independent_and_balanced():
    g = torch.Generator().manual_seed(0)
    H = torch.rand(5, 384, generator=g)
    h = hash_paper_a(H)
    assert h.dtype == torch.bool and h.shape == (5, 384)
    assert (h.sum(1) == 192).all()  # distinct values: exactly M/2 bits above the median
    assert torch.equal(hash_paper_a(H[2:3]), h[2:3])
    assert torch.equal(hash_paper_a(H.numpy()), h)


# ----------------------------------------------------------------------------------- paper B


def test_paper_b_row_mean_and_one_hot():
    w = torch.tensor([[0.9, -0.5, 0.1, -0.1]])  # mean 0.1 -> equality gives 1 (eq. 12: >=)
    z = torch.tensor([[0.1, 2.0, -1.0]])
    h1, h2, code = hash_paper_b(w, z)
    assert h1.tolist() == [[False, True, False]]
    assert h2.tolist() == [[True, False, True, False]]
    assert code.tolist() == [[False, True, False, True, False, True, False]]
    a, b = split_paper_b(code.numpy(), 3)
    assert a.tolist() == h1.tolist() and b.tolist() == h2.tolist()


def test_paper_b_explicit_thresholds():
    w = torch.tensor([[0.9, -0.5, 0.1, -0.1], [0.0, 0.3, -0.3, 0.2]])
    z = torch.tensor([[0.0, 0.0, 5.0], [4.0, 0.0, 1.0]])
    _, h2, _ = hash_paper_b(w, z, threshold=0.2)
    assert h2.tolist() == [[True, False, False, False], [False, True, False, True]]
    per_bit = torch.tensor([1.0, -1.0, 0.1, 0.0])
    _, h2, _ = hash_paper_b(w, z, threshold=per_bit)
    assert h2.tolist() == [[False, True, True, False], [False, True, False, True]]
    h1, _, _ = hash_paper_b(w, z)
    assert h1.tolist() == [[False, False, True], [True, False, False]]


def test_paper_b_single_vector():
    h1, h2, code = hash_paper_b(np.array([0.5, -0.5]), np.array([1.0, 3.0]))
    assert h1.tolist() == [False, True] and h2.tolist() == [True, False]
    assert code.shape == (4,)


# ----------------------------------------------------------------------------------- paper C


def _frame(cls: int, peak: float = 10.0, d: int = 27) -> torch.Tensor:
    f = torch.arange(d, dtype=torch.float32) * 0.01  # distinct background, max at d - 1 = other
    f[cls] = peak
    return f


def test_paper_c_median_y14_27_values():
    vals = torch.tensor([26, 3, 14, 0, 7, 21, 13, 9, 1, 18, 25, 2, 12, 5,
                         20, 4, 17, 8, 23, 11, 6, 16, 24, 10, 19, 15, 22], dtype=torch.float32)
    bits = binarize_median(vals[None])  # med = y_(14) = 13
    assert bits[0].tolist() == [(v > 13) for v in vals.tolist()]
    assert int(bits.sum()) == 13
    # equality with the median gives 0
    assert binarize_median(torch.tensor([[1.0, 2.0, 2.0, 2.0, 3.0]])).tolist() == [[False, False, False, False, True]]


def test_paper_c_segment_merging_hand_path():
    O = 26
    path = [O, 3, 3, O, 3, 5, 5, 5, O, O, 3]
    frames = [_frame(c, peak=10.0 + i) for i, c in enumerate(path)]
    y = torch.stack(frames)
    seg = segments_paper_c(y, merge_across_other=True)  # literal: adjacency in F' (after dropping "other")
    assert seg.labels.tolist() == [3, 5, 3]
    assert seg.start.tolist() == [1, 5, 10] and seg.end.tolist() == [4, 7, 10]
    f = frames
    exp0 = ((f[1] + f[2]) / 2 + f[4]) / 2  # eq. (10) applied recursively
    exp1 = ((f[5] + f[6]) / 2 + f[7]) / 2
    assert torch.allclose(seg.scores[0], exp0) and torch.allclose(seg.scores[1], exp1)
    assert torch.allclose(seg.scores[2], f[10])
    # running arithmetic mean instead of eq. (10)
    seg_mean = segments_paper_c(y, merge="mean", merge_across_other=True)
    assert torch.allclose(seg_mean.scores[0], (f[1] + f[2] + f[4]) / 3)
    # default: adjacency in the original frame sequence, the "other" frame splits the first run
    seg_split = segments_paper_c(y)
    assert seg_split.labels.tolist() == [3, 3, 5, 3]
    assert seg_split.start.tolist() == [1, 4, 5, 10] and seg_split.end.tolist() == [2, 4, 7, 10]
    assert torch.allclose(seg_split.scores[0], (f[1] + f[2]) / 2)
    assert torch.allclose(seg_split.scores[1], f[4])
    bits = hash_paper_c(y, merge_across_other=True)
    assert bits.shape == (3, 27) and bits.dtype == torch.bool
    assert torch.equal(bits, binarize_median(seg.scores))
    assert torch.equal(hash_paper_c(y), binarize_median(seg_split.scores))
    assert bool(bits[0, 3]) and bool(bits[1, 5])  # the argmax class is always above the median


def test_paper_c_eq10_long_run_weights():
    frames = torch.stack([_frame(4, peak=float(p)) for p in (2.0, 4.0, 8.0, 16.0)])
    merged = segments_paper_c(frames).scores[0, 4]
    # (((2 + 4)/2 + 8)/2 + 16)/2 = 10.75
    assert merged.item() == pytest.approx(10.75)


def test_paper_c_empty_and_drop_mask():
    y = torch.stack([_frame(26), _frame(26)])
    assert hash_paper_c(y).shape == (0, 27)
    assert hash_paper_c(torch.zeros(0, 27)).shape == (0, 27)
    y = torch.stack([_frame(1), _frame(2), _frame(2)])
    seg = segments_paper_c(y, drop_mask=torch.tensor([False, True, False]))
    assert seg.labels.tolist() == [1, 2] and seg.start.tolist() == [0, 2]


def test_paper_c_batch_respects_lengths_and_blank():
    a = torch.stack([_frame(1), _frame(1), _frame(7)])
    b = torch.stack([_frame(2), _frame(9), _frame(9)])
    scores = torch.stack([a, b])
    scores[0, 2] = _frame(11)  # item 0 has length 2: this frame is padding
    out = hash_paper_c_batch(scores, torch.tensor([2, 3]))
    assert [o.shape[0] for o in out] == [1, 2]
    # through the single entry point, with a CTC blank column: frame 1 of item 1 is a blank win
    logits = torch.cat([scores, torch.zeros(2, 3, 1)], dim=-1)
    logits[1, 1, 27] = 100.0
    mo = ModelOutput(logits=logits, hash_features=scores, lengths=torch.tensor([2, 3]))
    codes = codes_from_output("paper_c", mo)
    assert isinstance(codes, list) and [c.shape for c in codes] == [(1, 27), (2, 27)]
    codes_nb = codes_from_output("paper_c", mo, drop_blank=True)
    assert np.array_equal(codes_nb[1][0], hash_paper_c(b[:1]).numpy()[0])
    # frames 1 and 2 of item 1 are both argmax 9; with the blank frame dropped only frame 2 stays
    assert np.array_equal(codes_nb[1][1], hash_paper_c(b[2:]).numpy()[0])
    codes_keep = codes_from_output("paper_c", mo, drop_blank=False)
    assert np.array_equal(codes_keep[1][1], hash_paper_c(b[1:]).numpy()[0])


# ----------------------------------------------------------------------------------- packing


@pytest.mark.parametrize("d", [1, 8, 13, 27, 32, 72, 384])
def test_pack_unpack_round_trip(d):
    rng = np.random.default_rng(d)
    bits = rng.random((6, d)) < 0.5
    packed = pack_bits(bits)
    assert packed.dtype == np.uint8 and packed.shape == (6, (d + 7) // 8)
    assert np.array_equal(unpack_bits(packed, d), bits)
    assert np.array_equal(pack_bits(torch.from_numpy(bits)), packed)


def test_pack_bit_order_is_faiss_order():
    bits = np.zeros((1, 16), dtype=bool)
    bits[0, [0, 9, 10]] = True
    assert pack_bits(bits).tolist() == [[1, 6]]  # bit i -> byte i // 8, position i % 8 (LSB first)
    rng = np.random.default_rng(1)
    bits = rng.random((4, 40)) < 0.5
    x = np.where(bits, 1.0, -1.0).astype(np.float32)
    ref = np.zeros((4, 5), dtype=np.uint8)
    faiss.fvecs2bitvecs(faiss.swig_ptr(np.ascontiguousarray(x)), faiss.swig_ptr(ref), 40, 4)
    assert np.array_equal(pack_bits(bits), ref)


def test_pack_groups_27():
    seg = np.zeros((2, 27), dtype=bool)
    seg[0, 26] = True
    seg[1, :] = True
    p = pack_groups_27(seg)
    assert p.shape == (2, 4) and p.dtype == np.uint8
    assert p[0].tolist() == [0, 0, 0, 4]
    assert p[1].tolist() == [255, 255, 255, 7]  # the 5 padding bits stay 0
    assert np.array_equal(unpack_bits(p, 32)[:, :27], seg)
    with pytest.raises(ValueError):
        pack_groups_27(np.zeros((1, 26), dtype=bool))


@pytest.mark.parametrize("d", [32, 72, 384])
def test_hamming_equals_faiss_index_binary_flat(d):
    rng = np.random.default_rng(d)
    db_bits = rng.random((60, d)) < 0.5
    q_bits = rng.random((7, d)) < 0.5
    db, q = pack_bits(db_bits), pack_bits(q_bits)
    index = faiss.IndexBinaryFlat(d)
    index.add(db)
    dist, labels = index.search(q, 60)
    ours = hamming(q, db)
    assert ours.shape == (7, 60)
    assert np.array_equal(np.take_along_axis(ours, labels, axis=1), dist)
    # reference by unpacked bits, row-wise mode, chunked mode
    assert np.array_equal(ours, (q_bits[:, None, :] != db_bits[None]).sum(-1))
    assert np.array_equal(hamming(q, db[:7], pairwise=False), np.diag(ours[:, :7]))
    assert np.array_equal(hamming(q, db, chunk_bytes=1), ours)


def test_hamming_27bit_groups_with_faiss_d32():
    rng = np.random.default_rng(5)
    segs = rng.random((30, 27)) < 0.5
    query = rng.random((3, 27)) < 0.5
    index = faiss.IndexBinaryFlat(32)
    index.add(pack_groups_27(segs))
    lims, dist, labels = index.range_search(pack_groups_27(query), 12)
    ours = hamming(pack_groups_27(query), pack_groups_27(segs))
    for i in range(3):
        got = dict(zip(labels[lims[i]:lims[i + 1]].tolist(), dist[lims[i]:lims[i + 1]].tolist()))
        exp = {j: int(v) for j, v in enumerate(ours[i]) if v < 12}
        assert got == exp


def test_ber_known_pairs():
    a = np.array([1, 0, 1, 0], dtype=bool)
    assert ber(a, np.array([1, 1, 0, 0])) == pytest.approx(0.5)
    assert ber(a, a) == 0.0
    assert ber(a, ~a) == 1.0
    assert ber(np.array([1, 1, 1, 1, 1, 1, 1, 1]), np.array([1, 1, 1, 1, 1, 1, 1, 0])) == pytest.approx(0.125)
    A = np.array([[1, 0, 1, 0], [1, 1, 1, 1]], dtype=bool)
    B = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0]], dtype=bool)
    assert np.allclose(ber(A, B, pairwise=True), [[0.0, 0.5, 0.5], [0.5, 1.0, 0.5]])
    assert np.allclose(ber(A, B[:2]), [0.0, 1.0])
    with pytest.raises(ValueError):
        ber(a, np.zeros(5, dtype=bool))


# -------------------------------------------------------------------------------- entry point


def test_codes_from_output_a_and_b():
    g = torch.Generator().manual_seed(3)
    feats = torch.rand(4, 16, generator=g)
    logits = torch.randn(4, 5, generator=g)
    mo = ModelOutput(logits=logits, hash_features=feats)
    a = codes_from_output("paper_a", mo)
    assert isinstance(a, np.ndarray) and a.dtype == bool and a.shape == (4, 16)
    assert np.array_equal(a, hash_paper_a(feats).numpy())
    b = codes_from_output("paper_b", {"logits": logits, "hash_features": torch.tanh(feats)})
    assert b.shape == (4, 5 + 16)
    assert (b[:, :5].sum(1) == 1).all()
    assert np.array_equal(b, hash_paper_b(torch.tanh(feats), logits).code.numpy())
    u = torch.tanh(torch.randn(4, 16, generator=g))
    s = codes_from_output("speechret", ModelOutput(logits=logits, hash_features=u))
    assert s.dtype == bool and np.array_equal(s, (u > 0).numpy())
    assert set(hash_method_names()) == {"paper_a", "paper_b", "paper_c", "speechret"}
    assert [m for m in hash_method_names() if hash_method_class(m).variable_length] == ["paper_c"]
    with pytest.raises(ValueError, match="unknown hash method"):
        codes_from_output("paper_z", mo)
