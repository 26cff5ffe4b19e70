"""speechret's backbone (models.components.resnet_hash): shapes, size, padding invariance."""

from __future__ import annotations

import pytest
import torch

from speechret.models.components.resnet_hash import ResNetHashNet


def test_shapes_and_parameter_budget():
    net = ResNetHashNet(n_mels=64, n_classes=20, hash_bits=128)
    out = net(torch.randn(3, 150, 64), torch.tensor([150, 90, 40]))
    assert out.logits.shape == (3, 20) and out.hash_features.shape == (3, 128)
    assert bool((out.hash_features.abs() < 1).all())
    assert sum(p.numel() for p in net.parameters()) < 1_000_000


def test_code_of_an_item_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    net = ResNetHashNet(n_mels=32, n_classes=5, hash_bits=64).eval()
    a, b = torch.randn(77, 32), torch.randn(140, 32)
    batch = torch.zeros(2, 140, 32)
    batch[0, :77], batch[1] = a, b
    batch[0, 77:] = 5.0  # garbage in the padding must not leak
    with torch.no_grad():
        together = net(batch, torch.tensor([77, 140])).hash_features
        alone = net(a[None], torch.tensor([77])).hash_features
    assert torch.allclose(together[0], alone[0], atol=1e-5)


def test_masked_norm_training_statistics_ignore_the_padding():
    """``masked_norm=True``: in training too, more zero padding in the batch changes nothing (the
    batch-norm statistics are those of the valid frames); plain ``nn.BatchNorm2d`` counts it."""
    torch.manual_seed(0)
    x, lengths = torch.randn(4, 90, 32), torch.tensor([90, 70, 50, 30])
    x = x * (torch.arange(90)[None, :, None] < lengths[:, None, None])
    longer = torch.cat([x, torch.zeros(4, 60, 32)], 1)
    for masked, same in ((True, True), (False, False)):
        torch.manual_seed(1)
        net = ResNetHashNet(n_mels=32, n_classes=5, hash_bits=16, dropout=0.0, masked_norm=masked).train()
        a = net(x, lengths).hash_features
        b = net(longer, lengths).hash_features
        assert torch.allclose(a, b, atol=1e-5) is same
        assert set(net.state_dict()) == set(ResNetHashNet(n_mels=32, n_classes=5, hash_bits=16).state_dict())


def test_time_only_pooling_keeps_the_frequency_rows():
    """``pool_freq=False`` keeps the last stage's frequency rows: 2 C F' pooled features, the
    embedding's input width following ``n_mels``."""
    torch.manual_seed(0)
    net = ResNetHashNet(n_mels=40, n_classes=5, hash_bits=16, channels=(8, 16), pool_freq=False).eval()
    assert net.embed[0].in_features == 2 * 16 * 10  # 40 bins halved by the stem and stage 2
    out = net(torch.randn(2, 50, 40), torch.tensor([50, 30]))
    assert out.hash_features.shape == (2, 16)


def _alone_and_in_a_padded_batch(net):
    """The code of a 33-frame item hashed alone and inside a batch padded to 61 frames with junk."""
    a = torch.randn(33, 40)
    batch = torch.full((2, 61, 40), 3.0)
    batch[0, :33], batch[1] = a, torch.randn(61, 40)
    with torch.no_grad():
        together = net(batch, torch.tensor([33, 61])).hash_features
        alone = net(a[None], torch.tensor([33])).hash_features
    return together[0], alone[0]


def test_stride_one_stem_keeps_the_input_resolution_through_the_first_stage():
    """``stem_stride=1``: the frequency rows at the pooling double (the stem no longer halves them),
    the code still ignores padding in ``eval()``, and the backbone stays under 1 M parameters."""
    torch.manual_seed(0)
    net = ResNetHashNet(n_mels=40, n_classes=5, hash_bits=16, channels=(8, 16), pool_freq=False,
                        stem_stride=1, masked_norm=True).eval()
    assert net.embed[0].in_features == 2 * 16 * 20  # 40 bins halved by stage 2 only
    together, alone = _alone_and_in_a_padded_batch(net)
    assert torch.allclose(together, alone, atol=1e-5)
    big = ResNetHashNet(n_mels=64, n_classes=20, hash_bits=128, pool_freq=False, masked_norm=True, stem_stride=1)
    assert sum(p.numel() for p in big.parameters()) < 1_000_000
    with pytest.raises(ValueError, match="stem_stride"):
        ResNetHashNet(stem_stride=3)


@pytest.mark.parametrize("pair, rows, first", [((2, 1), 10, (20, 61)), ((1, 2), 20, (40, 31))])
def test_stem_stride_pair_strides_frequency_and_time_apart(pair, rows, first):
    """``stem_stride=(frequency, time)``: the bands at the pooling follow the frequency stride, the
    frames after the first stage the time stride (ceil(61 / 2) = 31), and the code still ignores
    padding in ``eval()``."""
    torch.manual_seed(0)
    net = ResNetHashNet(n_mels=40, n_classes=5, hash_bits=16, channels=(8, 16), pool_freq=False,
                        stem_stride=pair, masked_norm=True).eval()
    assert net.embed[0].in_features == 2 * 16 * rows
    seen = []
    net.stages[0].register_forward_hook(lambda m, a, out: seen.append(tuple(out[0].shape[2:])) and None)
    together, alone = _alone_and_in_a_padded_batch(net)
    assert seen[0] == first  # (bands, frames) after the first stage, padded batch
    assert torch.allclose(together, alone, atol=1e-5)
    for bad in ((1, 3), (2, 2, 1)):
        with pytest.raises(ValueError, match="stem_stride"):
            ResNetHashNet(stem_stride=bad)


def test_time_segments_pool_each_part_of_the_word_apart():
    """``time_segments=S``: S times the pooled features; an item's code still does not depend on
    the padding of its batch; a part pools only its own frames (changing the last stage's second
    half leaves the first part's features as they were); fewer frames than parts still work."""
    torch.manual_seed(0)
    one = ResNetHashNet(n_mels=40, n_classes=5, hash_bits=16, channels=(8, 16), pool_freq=False).eval()
    two = ResNetHashNet(n_mels=40, n_classes=5, hash_bits=16, channels=(8, 16), pool_freq=False,
                        time_segments=2).eval()
    assert two.embed[0].in_features == 2 * one.embed[0].in_features
    together, alone = _alone_and_in_a_padded_batch(two)
    assert torch.allclose(together, alone, atol=1e-5)
    h = torch.randn(1, 16, 10, 8)
    valid = lambda a, b: ((torch.arange(8) >= a) & (torch.arange(8) < b))[None, None, None, :]  # noqa: E731
    first = torch.cat(two._pool(h, valid(0, 4), torch.tensor([4.0])), 1)
    h2 = h.clone()
    h2[..., 4:] = torch.randn(1, 16, 10, 4)
    assert torch.equal(first, torch.cat(two._pool(h2, valid(0, 4), torch.tensor([4.0])), 1))
    assert not torch.equal(torch.cat(two._pool(h, valid(4, 8), torch.tensor([4.0])), 1),
                           torch.cat(two._pool(h2, valid(4, 8), torch.tensor([4.0])), 1))
    with torch.no_grad():
        short = two(torch.randn(1, 3, 40), torch.tensor([3])).hash_features  # one frame at the last stage
    assert short.shape == (1, 16) and bool(torch.isfinite(short).all())
    with pytest.raises(ValueError, match="time_segments"):
        ResNetHashNet(n_mels=40, time_segments=0)


@pytest.mark.parametrize("training", [True, False])
def test_straight_through_classifier_sees_the_sign_code_and_passes_its_gradient_to_u(training):
    """``straight_through=True`` (Greedy Hash): same weights, same relaxed code ``u``; the logits are
    the classifier's on ``sign(u)``, and the cross-entropy's gradient at ``u`` is the one at the sign
    code, passed through unchanged (not the gradient at ``u``, which differs)."""
    torch.manual_seed(0)
    kw = dict(n_mels=32, n_classes=5, hash_bits=16, channels=(8, 16), pool_freq=False, masked_norm=True)
    plain, st = ResNetHashNet(**kw), ResNetHashNet(**kw, straight_through=True)
    st.load_state_dict(plain.state_dict())
    plain.train(training), st.train(training)
    x, lengths, y = torch.randn(4, 60, 32), torch.tensor([60, 50, 41, 33]), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(1)
    a = plain(x, lengths)
    torch.manual_seed(1)  # the same dropout mask
    b = st(x, lengths)
    assert torch.equal(a.hash_features, b.hash_features)
    code = torch.where(b.hash_features > 0, 1.0, -1.0).detach().requires_grad_(True)
    expected_logits = st.classifier(code)
    assert torch.allclose(b.logits, expected_logits, atol=1e-6)
    (expected_grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(expected_logits, y), code)
    (grad_u,) = torch.autograd.grad(torch.nn.functional.cross_entropy(b.logits, y), b.hash_features)
    (grad_relaxed,) = torch.autograd.grad(torch.nn.functional.cross_entropy(a.logits, y), a.hash_features)
    assert torch.allclose(grad_u, expected_grad, atol=1e-7)
    assert not torch.allclose(grad_relaxed, expected_grad, atol=1e-4)


def test_time_frames_resample_every_word_to_one_length():
    """``time_frames=N`` (linear time normalisation): a word and the same word spoken twice as slowly
    (every frame repeated) reach the stem as nearly the same N frames; a linear ramp is resampled
    exactly; an item's code does not depend on its batch's padding; a bad N is refused."""
    from speechret.models.components.log_mel_hash import linear_time_normalize

    ramp = torch.arange(10.0)[None, None, None, :].repeat(2, 1, 3, 1)       # (2, 1, 3, 10)
    ramp[1, ..., 5:] = 99.0                                                 # beyond item 1's 5 frames
    out = linear_time_normalize(ramp, torch.tensor([10, 5]), 20)
    assert out.shape == (2, 1, 3, 20)
    want0 = ((torch.arange(20) + 0.5) * 10 / 20 - 0.5).clamp(0, 9)
    want1 = ((torch.arange(20) + 0.5) * 5 / 20 - 0.5).clamp(0, 4)
    assert torch.allclose(out[0, 0, 0], want0) and torch.allclose(out[1, 0, 0], want1)   # padding never read
    torch.manual_seed(0)
    net = ResNetHashNet(n_mels=40, n_classes=5, hash_bits=16, channels=(8, 16), pool_freq=False,
                        time_frames=48).eval()
    word = torch.randn(40, 40).cumsum(0) / 4                               # a smooth trajectory
    slow = word.repeat_interleave(2, 0)                                    # the same, half the speed
    with torch.no_grad():
        img_fast, n_fast = net.image(word[None], torch.tensor([40]))
        img_slow, n_slow = net.image(slow[None], torch.tensor([80]))
    assert img_fast.shape == img_slow.shape == (1, 1, 40, 48) and int(n_fast) == int(n_slow) == 48
    plain = ResNetHashNet(n_mels=40, n_classes=5, hash_bits=16, channels=(8, 16), pool_freq=False).eval()
    with torch.no_grad():
        raw_fast, _ = plain.image(word[None], torch.tensor([40]))
        raw_slow, _ = plain.image(slow[None], torch.tensor([80]))
    # normalised, the two tempos differ by a fraction of what a fixed-rate image's first 40 frames do
    assert (img_fast - img_slow).abs().mean() < 0.25 * (raw_fast - raw_slow[..., :40]).abs().mean()
    together, alone = _alone_and_in_a_padded_batch(net)
    assert torch.allclose(together, alone, atol=1e-5)
    with pytest.raises(ValueError, match="time_frames"):
        ResNetHashNet(n_mels=40, time_frames=0)


def test_cmvn_mean_removes_each_bands_mean_and_keeps_its_scale():
    """``cmvn="mean"`` (Kaldi's apply-cmvn default): each band loses its mean over the valid frames and
    keeps its spread, so a band-limited recording's quiet bands stay quiet; ``True`` scales every
    band to unit variance; the padding is zero either way; another value is refused."""
    torch.manual_seed(0)
    x = torch.randn(2, 50, 8) * torch.tensor([0.1, 1, 1, 1, 4, 4, 4, 4]) + 30.0
    lengths = torch.tensor([50, 35])
    for cmvn in ("mean", True):
        net = ResNetHashNet(n_mels=8, n_classes=2, hash_bits=8, channels=(4, 8), cmvn=cmvn).eval()
        img, _ = net.image(x, lengths)
        valid = img[1, 0, :, :35]
        assert float(valid.mean(-1).abs().max()) < 1e-4 and float(img[1, 0, :, 35:].abs().max()) == 0.0
        spread = valid.std(-1, unbiased=False)
        want = x[1, :35].std(0, unbiased=False) if cmvn == "mean" else torch.ones(8)
        assert torch.allclose(spread, want, rtol=1e-3)
    with pytest.raises(ValueError, match="cmvn"):
        ResNetHashNet(n_mels=8, cmvn="var")


def test_rnn_head_ignores_the_padding_and_learns():
    """``rnn_hidden=H`` (a bidirectional GRU over the last map's frames, pooled instead of the map): an
    item's code does not depend on its batch's padding (the GRU reads packed valid frames only); the
    GRU gets a gradient; the default-sized backbone stays under 1 M parameters; a negative H is refused."""
    torch.manual_seed(0)
    net = ResNetHashNet(n_mels=40, n_classes=5, hash_bits=16, channels=(8, 16), pool_freq=False,
                        stem_stride=1, rnn_hidden=8).eval()
    together, alone = _alone_and_in_a_padded_batch(net)
    assert torch.allclose(together, alone, atol=1e-5)
    net.train()
    net(torch.randn(3, 50, 40), torch.tensor([50, 30, 20])).hash_features.square().sum().backward()
    assert float(net.rnn.weight_ih_l0.grad.abs().sum()) > 0
    full = ResNetHashNet(n_mels=64, n_classes=20, hash_bits=128, pool_freq=False, stem_stride=(1, 2), rnn_hidden=64)
    assert sum(p.numel() for p in full.parameters()) < 1_000_000
    with pytest.raises(ValueError, match="rnn_hidden"):
        ResNetHashNet(n_mels=40, rnn_hidden=-1)
