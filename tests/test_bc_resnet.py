"""The BC-ResNet backbone (models.components.bc_resnet): shapes, size, padding invariance, sub-spectral
norm, the broadcast branch, and the config group that selects it."""

from __future__ import annotations

import pytest
import torch

from speechret.models.components.bc_resnet import BCResBlock, BCResNetHashNet, SubSpectralNorm
from speechret.models.components.resnet_hash import ResNetHashNet


def test_shapes_and_parameter_budget():
    """BC-ResNet-4 (base 32) and -8 (base 64) on 64 bands: the last map has 8 - 4 = 4 rows after
    the 5x5 head convolution, pooled as mean and max of ``4 base`` channels per row."""
    for base in (32, 64):
        net = BCResNetHashNet(n_mels=64, n_classes=20, hash_bits=128, base=base, time_stride=2).eval()
        assert net.embed[0].in_features == 2 * 4 * base * 4
        with torch.no_grad():
            out = net(torch.randn(3, 150, 64), torch.tensor([150, 90, 40]))
        assert out.logits.shape == (3, 20) and out.hash_features.shape == (3, 128)
        assert bool((out.hash_features.abs() < 1).all())
        assert sum(p.numel() for p in net.parameters()) < 1_000_000


def _alone_and_in_a_padded_batch(net, n_mels=40):
    a = torch.randn(33, n_mels)
    batch = torch.full((2, 61, n_mels), 3.0)
    batch[0, :33], batch[1] = a, torch.randn(61, n_mels)  # junk in the padding must not leak
    with torch.no_grad():
        together = net(batch, torch.tensor([33, 61])).hash_features
        alone = net(a[None], torch.tensor([33])).hash_features
    return together[0], alone[0]


@pytest.mark.parametrize("time_stride, masked", [(1, True), (2, True), (2, False)])
def test_code_of_an_item_does_not_depend_on_its_batch(time_stride, masked):
    torch.manual_seed(0)
    net = BCResNetHashNet(n_mels=40, n_classes=5, hash_bits=16, base=8, sub_bands=5, time_stride=time_stride,
                          masked_norm=masked).eval()
    together, alone = _alone_and_in_a_padded_batch(net)
    assert torch.allclose(together, alone, atol=1e-5)


def test_masked_norm_training_statistics_ignore_the_padding():
    """``masked_norm=True``: in training, more zero padding in the batch changes nothing (every batch
    norm, the sub-spectral ones included, takes the valid frames' statistics); plain batch norm
    counts the padding."""
    torch.manual_seed(0)
    x, lengths = torch.randn(4, 90, 40), torch.tensor([90, 70, 50, 30])
    x = x * (torch.arange(90)[None, :, None] < lengths[:, None, None])
    longer = torch.cat([x, torch.zeros(4, 60, 40)], 1)
    for masked, same in ((True, True), (False, False)):
        torch.manual_seed(1)
        net = BCResNetHashNet(n_mels=40, n_classes=5, hash_bits=16, base=8, sub_bands=5, dropout=0.0,
                              block_dropout=0.0, masked_norm=masked).train()
        assert torch.allclose(net(x, lengths).hash_features, net(longer, lengths).hash_features, atol=1e-5) is same


def test_sub_spectral_norm_normalises_each_group_of_rows_apart():
    """Two halves of the rows at scales 1 and 100: sub-spectral norm with 2 groups gives each half
    zero mean and unit variance per channel (over the valid frames); one group (plain batch norm)
    leaves the quiet half near zero."""
    torch.manual_seed(0)
    x = torch.randn(6, 3, 8, 20)
    x[:, :, 4:] *= 100.0
    x[:, :, :4] += 5.0
    lengths = torch.full((6,), 20)
    for masked in (True, False):
        with torch.no_grad():
            two = SubSpectralNorm(3, 2, masked=masked).train()(x, lengths)
            one = SubSpectralNorm(3, 1, masked=masked).train()(x, lengths)
        for half in (two[:, :, :4], two[:, :, 4:]):
            assert torch.allclose(half.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
            assert torch.allclose(half.var((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
        assert float(one[:, :, :4].std()) < 0.05
    with pytest.raises(ValueError, match="sub_bands"):
        SubSpectralNorm(3, 3)(x, lengths)


def test_the_time_branch_is_broadcast_over_frequency():
    """eq. (3): ``y = ReLU(x + f2(x) + BC(f1(avgpool(f2(x)))))`` -- with ``f2`` made the identity
    (a unit centre tap, its norm a pass-through), ``y - x - f2(x) = y - 2 x`` is the same on every
    frequency row (where ReLU passes), and it only sees the mean over frequency."""
    torch.manual_seed(0)
    block = BCResBlock(4, 4, sub_bands=2, dropout=0.0).eval()
    with torch.no_grad():
        block.freq_conv.weight.zero_()
        block.freq_conv.weight[:, :, 1, 0] = 1.0
        block.freq_norm.norm.running_mean.zero_()
        block.freq_norm.norm.running_var.fill_(1.0 - block.freq_norm.norm.eps)
    x = torch.rand(2, 4, 6, 10) + 1.0  # positive: the ReLU passes everything
    lengths = torch.tensor([10, 10])
    with torch.no_grad():
        branch = block(x, lengths) - 2 * x
        assert torch.allclose(branch, branch[:, :, :1].expand_as(branch), atol=1e-5)
        shuffled = x[:, :, torch.randperm(6)]  # the same mean over frequency
        assert torch.allclose(block(shuffled, lengths) - 2 * shuffled, branch, atol=1e-5)


def test_transition_blocks_change_width_and_stride_frequency():
    block = BCResBlock(8, 12, freq_stride=2, dilation=2, sub_bands=2).eval()
    with torch.no_grad():
        y = block(torch.randn(2, 8, 16, 30), torch.tensor([30, 20]))
    assert y.shape == (2, 12, 8, 30)
    assert bool((y[1, :, :, 20:] == 0).all()) and bool((y >= 0).all())


def test_bad_settings_name_the_parameter():
    with pytest.raises(ValueError, match="sub_bands"):
        BCResNetHashNet(n_mels=64, sub_bands=5)  # 32 rows after the stem
    with pytest.raises(ValueError, match="time_stride"):
        BCResNetHashNet(n_mels=64, time_stride=3)
    with pytest.raises(ValueError, match="freq_strides"):
        BCResNetHashNet(n_mels=64, freq_strides=(1, 2, 2))
    with pytest.raises(ValueError, match="rows"):
        BCResNetHashNet(n_mels=16, sub_bands=1)  # 2 rows left for the 5x5 head convolution


@pytest.mark.parametrize("backbone, pools_freq, pooled", [(ResNetHashNet, True, 2 * 2 * 64),
                                                           (BCResNetHashNet, False, 2 * 2 * 32 * 1)])
def test_both_backbones_take_the_head_options_and_refuse_others_by_name(backbone, pools_freq, pooled):
    """The head's options (HeadOptions) reach either backbone as keywords; each keeps its own default pooling
    (ResNet over time and frequency, BC-ResNet over time only), which a given ``pool_freq`` overrides; a
    misspelt option is a TypeError naming the backbone and the key, not a silent default."""
    kw = dict(n_mels=40, n_classes=5, hash_bits=16)
    kw.update(base=8, sub_bands=5) if backbone is BCResNetHashNet else kw.update(channels=(8, 16, 32, 64))
    net = backbone(**kw, embed_dim=24, cmvn="mean", time_segments=2)
    assert net.embed[0].out_features == 24 and net.cmvn == "mean" and net.time_segments == 2
    assert net.pool_freq is pools_freq and net.embed[0].in_features == pooled   # mean, max x 2 segments
    assert backbone(**kw, pool_freq=not pools_freq).pool_freq is not pools_freq
    with pytest.raises(TypeError, match=f"{backbone.__name__}.*'time_segment'.*time_segments"):
        backbone(**kw, time_segment=2)


def test_the_config_group_selects_the_backbone(build_speechret_hash):
    """``model/net=bc_resnet`` builds BCResNetHashNet with the features' bands and the model's bits,
    and a real batch's gradient reaches its stem."""
    model, dm, _ = build_speechret_hash("model/net=bc_resnet", "model.hash_bits=32")
    net = model.net
    assert isinstance(net, BCResNetHashNet) and net.n_mels == 64 and net.hash.out_features == 32
    batch = dm.prepare_batch(next(iter(dm.train_dataloader())))
    loss = model.compute_loss(model(batch["features"], batch["feature_lengths"]), batch)
    loss.backward()
    assert net.stem.weight.grad is not None and float(net.stem.weight.grad.abs().sum()) > 0


def test_the_stage_hook_runs_after_the_named_stages():
    """``style`` runs after the last block of each stage of ``style_after`` (blocks (2, 2, 4, 4):
    blocks 1 and 7 for stages 0 and 2), with that stage's map and valid frames."""
    seen = []

    class Record(torch.nn.Module):
        def forward(self, h, lengths):
            seen.append((tuple(h.shape[1:3]), lengths.tolist()))
            return h

    net = BCResNetHashNet(n_mels=40, n_classes=5, hash_bits=16, base=8, sub_bands=5, time_stride=2, style=Record(),
                          style_after=[0, 2]).eval()
    assert net._style_at == {1, 7}
    with torch.no_grad():
        net(torch.randn(2, 30, 40), torch.tensor([30, 21]))
    assert seen == [((8, 20), [15, 11]), ((16, 5), [15, 11])]  # widths base, 2 base; rows 20, 5
    with pytest.raises(ValueError, match="style_after"):
        BCResNetHashNet(n_mels=40, sub_bands=5, style=Record(), style_after=[4])
