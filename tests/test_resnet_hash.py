"""speechret's backbone (models.components.resnet_hash): shapes, size, padding invariance."""

from __future__ import annotations

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
