"""Test-time speed views (speechret.frontend.SpeedViews): the views are the training speed
perturbation of each clip, the code is the method's merge of them, and every path that codes
audio through a checkpoint (Hasher: index, search, evaluate) makes the same codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from speechret.augment import speed_change
from speechret.errors import ConfigError
from speechret.frontend import SpeedViews
from speechret.hashing import get_hash_method
from speechret.models.components.common import ModelOutput
from test_export import REPO, clip, random_checkpoint

FACTORS = [0.8, 0.9, 1.0, 1.1, 1.2]


def test_views_are_each_clip_at_each_speed_item_major():
    views = SpeedViews(FACTORS)
    lengths = torch.tensor([16000, 9001, 4000])
    wave = torch.zeros(3, 16000)
    for i, n in enumerate(lengths.tolist()):
        wave[i, :n] = torch.from_numpy(clip(n, i))
    wave[1, 9001:] = 7.0  # padding junk must not leak into any view
    out, out_len = views(wave, lengths)
    assert out.shape[0] == 3 * 5 and views.n_views == 5
    for i, n in enumerate(lengths.tolist()):
        for j, f in enumerate(FACTORS):
            row, step = i * 5 + j, int(round(f * 100))
            assert int(out_len[row]) == -(-n * 100 // step)  # ceil(L / f): a faster view is shorter
            alone, alone_len = speed_change(wave[i : i + 1, :n], torch.tensor([n]), torch.tensor([step]))
            assert int(alone_len[0]) == int(out_len[row])
            torch.testing.assert_close(out[row, : int(out_len[row])], alone[0, : int(alone_len[0])],
                                       rtol=0, atol=1e-6)
            assert not out[row, int(out_len[row]) :].any()
        torch.testing.assert_close(out[i * 5 + 2, :n], wave[i, :n], rtol=0, atol=0)  # speed 1.0: the clip


def test_views_refuse_bad_factors():
    with pytest.raises(ValueError, match=r"speeds in \[0.5, 2\]"):
        SpeedViews([0.3, 1.0])
    with pytest.raises(ValueError, match="repeat a speed"):
        SpeedViews([1.0, 1.001])


def test_sign_codes_of_views_are_the_sign_of_the_mean_relaxed_code():
    method = get_hash_method("speechret", n_classes=3)
    u = torch.tanh(torch.randn(4 * 3, 16, generator=torch.Generator().manual_seed(0)))
    out = ModelOutput(logits=torch.randn(12, 3), hash_features=u)
    got = method.codes_of_views(out, 3)
    want = (u.reshape(4, 3, 16).mean(1) > 0).numpy()
    assert got.shape == (4, 16) and np.array_equal(got, want)
    # a soft vote, not a majority: one confident view can outweigh two weak ones
    v = torch.tensor([[0.9], [-0.1], [-0.1]])
    assert method.codes_of_views(ModelOutput(logits=None, hash_features=v), 3)[0, 0]
    assert np.array_equal(method.codes_of_views(out, 1), method.codes(out))
    with pytest.raises(ValueError, match="whole number of 5-view items"):
        method.codes_of_views(out, 5)
    with pytest.raises(ConfigError, match="variable-length"):
        get_hash_method("paper_c").codes_of_views(out, 3)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint("speechret_hash", tmp_path_factory.mktemp("views"), "views=speed5",
                             "model.net.channels=[8,16,32,32]")


def test_hasher_codes_merge_the_views_of_each_clip(ckpt):
    from speechret.hashing.hasher import Hasher

    torch.set_num_threads(1)
    hasher = Hasher.from_checkpoint(ckpt)
    assert isinstance(hasher.views, SpeedViews) and hasher.n_views == 5
    clips = [clip(n, i) for i, n in enumerate([12000, 20000, 7000])]
    got = hasher.codes(clips)
    one_view = Hasher.from_checkpoint(ckpt, views=None)
    assert one_view.n_views == 1
    for c, code in zip(clips, got):
        # by hand: trim, then each speed alone through the single-view hasher, then the mean
        w, n = hasher.frontend(torch.from_numpy(c)[None], torch.tensor([len(c)]))
        u = []
        for f in FACTORS:
            x, m = speed_change(w, n, torch.tensor([int(round(f * 100))]))
            feats, flen = one_view.features(x[:, : int(m[0])], m)
            with torch.no_grad():
                u.append(one_view.module(feats, flen).hash_features[0])
        assert np.array_equal(code, (torch.stack(u).mean(0) > 0).numpy())
    assert not np.array_equal(got, one_view.codes(clips))  # the views do change codes
    # batching and padding do not: each clip alone gives its code
    for c, code in zip(clips, got):
        assert np.array_equal(hasher.codes([c])[0], code)


def test_evaluate_views_override_and_refusal(ckpt, tmp_path):
    from speechret.evaluate.runner import Context

    def ctx(spec):
        return Context(OmegaConf.create({"evaluate": {"views": spec}}), tmp_path)

    assert ctx("checkpoint").hasher(ckpt).n_views == 5
    assert ctx("none").hasher(ckpt).n_views == 1 and ctx(None).hasher(ckpt).views is None
    speed5 = OmegaConf.load(REPO / "conf" / "views" / "speed5.yaml").views
    assert ctx("speed5").views() == speed5
    with pytest.raises(ConfigError, match=r"evaluate.views must be 'checkpoint' or one of \['none', 'speed5'\]"):
        ctx("speed9").hasher(ckpt)
    from speechret.hashing.hasher import Hasher  # the same names straight to the Hasher

    assert Hasher.from_checkpoint(ckpt, views="none").n_views == 1
    assert Hasher.from_checkpoint(ckpt, views="speed5").n_views == 5
    with pytest.raises(ConfigError, match="^views must be"):
        Hasher.from_checkpoint(ckpt, views="speed9")
