"""InstanceNorm (models.components.instance_norm): IBN-b's IN and ResNorm on padded (B, C, F, T) maps."""

from __future__ import annotations

import pytest
import torch
from feature_maps import styled_maps

from speechret.models.components.common import instance_statistics
from speechret.models.components.instance_norm import InstanceNorm
from speechret.models.components.resnet_hash import ResNetHashNet


def _batch(seed: int = 0):
    return styled_maps(seed, per_row=True)


@pytest.mark.parametrize("per,axes", [("channel", (2, 3)), ("frequency", (1, 3))])
def test_each_item_leaves_with_zero_mean_and_unit_spread_over_its_valid_frames(per, axes):
    """The statistics the module removes, counted over each item's own valid frames (checked here
    by slicing each item to its length, with no mask), are 0 and 1 afterwards; the padding stays 0."""
    x, lengths, valid = _batch()
    y = InstanceNorm(per=per)(x, lengths)
    assert bool((y[~valid.expand_as(y)] == 0).all())
    for i, n in enumerate(lengths.tolist()):
        yi = y[i:i + 1, ..., :n]
        reduce = tuple(a for a in axes)
        torch.testing.assert_close(yi.mean(reduce), torch.zeros_like(yi.mean(reduce)), atol=1e-5, rtol=0)
        torch.testing.assert_close(yi.var(reduce, unbiased=False), torch.ones_like(yi.mean(reduce)), atol=1e-3, rtol=0)


@pytest.mark.parametrize("per", ["channel", "frequency"])
def test_a_gain_and_offset_of_what_it_normalises_leave_the_output_unchanged(per):
    """The property the domain-generalisation papers use it for: a per-item gain and offset of each
    channel (IBN-b) or each frequency row (ResNorm's IFN) - a voice's or a device's colour -
    does not reach the output."""
    x, lengths, valid = _batch(1)
    g = torch.Generator().manual_seed(7)
    shape = (5, 3, 1, 1) if per == "channel" else (5, 1, 8, 1)
    styled = (x * torch.rand(shape, generator=g).mul(4).add(0.2) + torch.randn(shape, generator=g) * 3) * valid
    m = InstanceNorm(per=per)
    torch.testing.assert_close(m(styled, lengths), m(x, lengths), atol=1e-4, rtol=1e-4)
    # ... and it is not invariant to the other axis' colour (it is not a global normalisation)
    other = (5, 1, 8, 1) if per == "channel" else (5, 3, 1, 1)
    recoloured = x * torch.rand(other, generator=g).mul(4).add(0.2) * valid
    assert not torch.allclose(m(recoloured, lengths), m(x, lengths), atol=1e-3)


def test_residual_adds_back_lambda_times_the_input_and_padding_does_not_matter():
    x, lengths, valid = _batch(2)
    plain, res = InstanceNorm(per="frequency"), InstanceNorm(per="frequency", residual=0.1)
    torch.testing.assert_close(res(x, lengths), plain(x, lengths) + 0.1 * x)
    junk = x + (~valid) * 9.0
    torch.testing.assert_close(res(junk, lengths), res(x, lengths))


def test_an_items_output_does_not_depend_on_its_batch_and_train_equals_eval():
    x, lengths, _ = _batch(3)
    m = InstanceNorm()
    whole = m.train()(x, lengths)
    torch.testing.assert_close(m.eval()(x, lengths), whole)
    torch.testing.assert_close(m(x[3:4, ..., :12], lengths[3:4]), whole[3:4, ..., :12])


def test_in_the_backbone_it_changes_the_codes_and_gradients_flow():
    """ResNetHashNet(style=InstanceNorm()) has the plain network's parameters; its codes differ
    (the stage outputs are normalised), in eval mode too, and the stem still learns."""
    torch.manual_seed(0)
    kw = dict(n_mels=32, n_classes=5, hash_bits=16, channels=(8, 16, 32), dropout=0.0, masked_norm=True)
    net = ResNetHashNet(**kw, style=InstanceNorm(), style_after=(0, 1))
    plain = ResNetHashNet(**kw)
    plain.load_state_dict(net.state_dict())
    x, lengths = torch.randn(6, 50, 32), torch.tensor([50, 44, 30, 50, 21, 37])
    net.eval(), plain.eval()
    with torch.no_grad():
        assert not torch.allclose(net(x, lengths).hash_features, plain(x, lengths).hash_features, atol=1e-4)
        one = net(x[4:5, :21], lengths[4:5]).hash_features
        torch.testing.assert_close(one, net(x, lengths).hash_features[4:5], atol=1e-5, rtol=1e-5)
    net.train()
    net(x, lengths).hash_features.sum().backward()
    assert net.stem.weight.grad is not None and bool(net.stem.weight.grad.abs().sum() > 0)


def test_bad_parameters_name_themselves():
    with pytest.raises(ValueError, match="per"):
        InstanceNorm(per="time")
    with pytest.raises(ValueError, match="residual"):
        InstanceNorm(residual=-0.5)
    with pytest.raises(ValueError, match="axes"):
        instance_statistics(torch.zeros(1, 1, 1, 1), torch.tensor([1]), axes=(1, 2))
