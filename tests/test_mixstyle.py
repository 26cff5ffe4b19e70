"""MixStyle (models.components.mixstyle): mixed statistics, content kept, padding ignored, eval identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from feature_maps import styled_maps

from speechret.models.components.instance_norm import InstanceNorm
from speechret.models.components.mixstyle import MixStyle
from speechret.models.components.resnet_hash import ResNetHashNet


def _batch(seed: int = 0):
    return styled_maps(seed, per_row=False)


@pytest.mark.parametrize("dims", ["channel", "freq"])
def test_each_item_gets_a_convex_mixture_of_its_and_one_partners_statistics(dims):
    """Eq. (5): the output's statistics (over valid frames) are λ·own + (1 − λ)·partner's, one λ
    and one partner for every channel (and row) of an item, for the mean and the σ alike; the
    normalised content is the input's; nothing leaks into the padding."""
    x, lengths, valid = _batch()
    ms = MixStyle(p=1.0, alpha=0.3, dims=dims).train()
    torch.manual_seed(3)
    y = ms(x, lengths)
    assert not torch.equal(y, x)
    assert bool((y[~valid.expand_as(y)] == 0).all())
    mu, sig, _ = ms.statistics(x, lengths)
    mu_y, sig_y, _ = ms.statistics(y, lengths)
    torch.testing.assert_close(((y - mu_y) / sig_y) * valid, ((x - mu) / sig) * valid, atol=1e-4, rtol=1e-4)
    for i in range(len(x)):
        found = False
        for j in range(len(x)):
            if j == i:
                lam = torch.ones(())
            else:
                lam = ((mu_y[i] - mu[j]) / (mu[i] - mu[j])).flatten()[0]
            if torch.allclose(mu_y[i], lam * mu[i] + (1 - lam) * mu[j], atol=1e-4) and \
                    torch.allclose(sig_y[i], lam * sig[i] + (1 - lam) * sig[j], atol=1e-4):
                assert -1e-5 <= float(lam) <= 1 + 1e-5
                found = True
                break
        assert found, f"item {i}: its statistics are no convex mixture of its own and one other item's"


def test_statistics_ignore_the_padding():
    x, lengths, valid = _batch()
    junk = x + (~valid) * 7.0
    ms = MixStyle(p=1.0).train()
    torch.manual_seed(1)
    a = ms(x, lengths)
    torch.manual_seed(1)
    b = ms(junk, lengths)
    torch.testing.assert_close(a, b)


def test_identity_in_eval_for_single_items_and_at_p_0():
    x, lengths, _ = _batch()
    assert torch.equal(MixStyle(p=1.0).eval()(x, lengths), x)
    assert torch.equal(MixStyle(p=1.0).train()(x[:1], lengths[:1]), x[:1])
    assert torch.equal(MixStyle(p=0.0).train()(x, lengths), x)


def test_p_is_the_share_of_mixed_batches():
    x, lengths, _ = _batch()
    ms = MixStyle(p=0.3).train()
    torch.manual_seed(0)
    mixed = np.mean([not torch.equal(ms(x, lengths), x) for _ in range(1000)])
    assert abs(mixed - 0.3) < 0.05


def test_in_the_backbone_training_mixes_and_eval_is_unchanged():
    """ResNetHashNet with a MixStyle: the same parameters as without; eval codes identical to the
    plain network's with the same weights; training outputs differ (the style is mixed)."""
    torch.manual_seed(0)
    kw = dict(n_mels=32, n_classes=5, hash_bits=16, channels=(8, 16, 32), dropout=0.0, masked_norm=True)
    net = ResNetHashNet(**kw, style=MixStyle(p=1.0, alpha=0.5), style_after=(0, 1))
    plain = ResNetHashNet(**kw)
    plain.load_state_dict(net.state_dict())
    x, lengths = torch.randn(6, 50, 32), torch.tensor([50, 44, 30, 50, 21, 37])
    net.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x, lengths).hash_features, plain(x, lengths).hash_features)
    net.train(), plain.train()
    torch.manual_seed(5)
    mixed = net(x, lengths).hash_features
    assert not torch.allclose(mixed, plain(x, lengths).hash_features, atol=1e-4)
    mixed.sum().backward()
    assert net.stem.weight.grad is not None and bool(net.stem.weight.grad.abs().sum() > 0)


def test_bad_parameters_name_themselves():
    with pytest.raises(ValueError, match="alpha"):
        MixStyle(alpha=0.0)
    with pytest.raises(ValueError, match="dims"):
        MixStyle(dims="time")
    with pytest.raises(ValueError, match="style_after"):
        ResNetHashNet(n_mels=32, channels=(8, 16), style=MixStyle(), style_after=(2,))


def test_the_model_config_switch_builds_it(build_speechret_hash):
    """The config group conf/model/style/ puts the module it names in the backbone: none by default
    (or ``model/style=none``, or ``~model/style``), channel MixStyle after stage 0 with
    ``model/style=mixstyle``, InstanceNorm with ``model/style=instance_norm``; their keys can be
    overridden."""

    def model(*extra):
        return build_speechret_hash(*extra)[0]

    on = model("model/style=mixstyle", "model.net.style.p=0.3", "model.net.style_after=[0,1]")
    assert isinstance(on.net.style, MixStyle) and on.net.style.p == 0.3 and on.net._style_at == {0, 1}
    ms = model("model/style=mixstyle").net
    assert isinstance(ms.style, MixStyle) and ms.style.dims == "channel" and ms._style_at == {0}
    assert ms.style.p == 0.5 and ms.style.alpha == 0.1
    for off in ((), ("model/style=none",), ("model/style=mixstyle", "~model/style")):
        assert model(*off).net.style is None
    ibn = model("model/style=instance_norm", "model.net.style.per=frequency", "model.net.style.residual=0.1")
    assert isinstance(ibn.net.style, InstanceNorm) and ibn.net.style.per == "frequency" and ibn.net.style.residual == 0.1


def test_a_checkpoint_written_before_the_hook_was_renamed_still_loads(build_speechret_hash, tmp_path):
    """Run configs stored before ``model.net.mixstyle(_after)`` became ``style(_after)`` are
    upgraded on load (speechret.config.upgrade_run_config): the same module, the same codes."""
    from omegaconf import OmegaConf

    from speechret.config import upgrade_run_config
    from speechret.errors import ConfigError
    from speechret.hashing.hasher import Hasher

    model, _, cfg = build_speechret_hash("model/style=mixstyle", "model.net.style.p=0.3", "model.net.style_after=[1]")
    model.eval()
    old = OmegaConf.to_container(cfg, resolve=True)
    old["model"]["net"]["mixstyle"] = old["model"]["net"].pop("style")
    old["model"]["net"]["mixstyle_after"] = old["model"]["net"].pop("style_after")
    torch.save({"speechret": old, "state_dict": model.state_dict()}, tmp_path / "old.ckpt")
    hasher = Hasher.from_checkpoint(tmp_path / "old.ckpt")
    net = hasher.module.net
    assert isinstance(net.style, MixStyle) and net.style.p == 0.3 and net._style_at == {1}
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    np.testing.assert_array_equal(np.asarray(hasher.codes([wave])),
                                  np.asarray(Hasher.from_config(cfg, model.state_dict()).codes([wave])))
    both = OmegaConf.create({"model": {"net": {"mixstyle": None, "style": None}}})
    with pytest.raises(ConfigError, match="model.net.mixstyle"):
        upgrade_run_config(both)
