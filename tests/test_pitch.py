"""The pitch track (speechret.features.pitch: YIN) and the hash net's pitch branch (log_mel_hash.py)."""

from __future__ import annotations

import math

import pytest
import torch

from speechret.features import LogMel, LogMelPitch
from speechret.features.pitch import yin_pitch
from speechret.models.components.resnet_hash import ResNetHashNet
from speechret.spec_augment import SpecAugment

SR = 16000


def _voice(f0: torch.Tensor, amp: float = 0.3) -> torch.Tensor:
    """A harmonic voice (5 partials, falling as 1/k) following the F0 track ``f0`` (Hz per sample)."""
    phase = 2 * math.pi * torch.cumsum(f0.double(), 0) / SR
    return sum(amp / k * torch.sin(k * phase) for k in range(1, 6)).float()


@pytest.mark.parametrize("f0", [95.0, 150.0, 220.0, 380.0])
def test_yin_finds_the_f0_of_a_harmonic_voice_and_no_period_in_noise_or_silence(f0):
    """YIN at 16 kHz: a steady voice's F0 within 1 % on every frame inside it, periodicity near 1;
    white noise has low periodicity, silence none."""
    torch.manual_seed(0)
    n = SR // 2
    wave = torch.stack([_voice(torch.full((n,), f0)), 0.3 * torch.randn(n), torch.zeros(n)])
    lag, periodic = yin_pitch(wave, hop=160, win=512, tau_min=SR // 500, tau_max=SR // 60 + 1)
    assert lag.shape == periodic.shape == (3, 1 + n // 160)
    inner = slice(5, -5)                                  # frames whose window lies inside the clip
    est = SR / lag[0, inner]
    assert float(((est - f0).abs() / f0).max()) < 0.01
    assert float(periodic[0, inner].min()) > 0.9
    assert float(periodic[1, inner].mean()) < 0.5
    assert float(periodic[2].max()) == 0.0


def test_log_mel_pitch_tracks_a_rising_tone_and_keeps_the_log_mel_as_it_was():
    """LogMelPitch (4 kHz track, median-smoothed): log2 F0 of a glide from 120 to 240 Hz within 1 % of
    the truth; its first n_mels columns are LogMel's output, bit for bit; the frames beyond an item's
    length hold pad_value; an item gives the same track alone and in a padded batch."""
    feats = LogMelPitch(n_mels=64, fixed_seconds=None, f_min=20.0)
    plain = LogMel(n_mels=64, fixed_seconds=None, f_min=20.0)
    t = torch.arange(SR) / SR
    glide = _voice(120.0 * 2 ** t)
    out, n = feats(glide[None])
    assert out.shape == (1, 101, 66) and int(n) == 101
    truth = torch.log2(120.0 * 2 ** (torch.arange(101) * 160 / SR))
    assert float((out[0, 5:-5, 64] - truth[5:-5]).abs().max()) < math.log2(1.01)
    assert float(out[0, 5:-5, 65].min()) > 0.9
    assert torch.equal(out[..., :64], plain(glide[None])[0])
    torch.manual_seed(1)
    batch = torch.zeros(2, SR)
    batch[0, :9000] = glide[:9000] + 0.05 * torch.randn(9000)
    batch[1] = glide.flip(0)
    together, lengths = feats(batch, torch.tensor([9000, SR]))
    alone, _ = feats(batch[:1, :9000])
    k = int(lengths[0])
    assert bool((together[0, k:] == 0.0).all())
    assert float((together[0, :k, 64:] - alone[0, :, 64:]).abs().max()) < 5e-3


def test_log_mel_pitch_refuses_settings_it_cannot_honour():
    with pytest.raises(ValueError, match="fixed_seconds"):
        LogMelPitch(fixed_seconds=4.0)
    with pytest.raises(ValueError, match="f0_min"):
        LogMelPitch(fixed_seconds=None, f0_min=600.0, f0_max=500.0)
    with pytest.raises(ValueError, match="median_frames"):
        LogMelPitch(fixed_seconds=None, median_frames=4)
    with pytest.raises(ValueError, match="pitch_sample_rate"):
        LogMelPitch(fixed_seconds=None, pitch_sample_rate=4410)   # the 10 ms hop would be 44.1 samples
    with pytest.raises(ValueError, match="yin_threshold"):
        LogMelPitch(fixed_seconds=None, yin_threshold=1.5)


def test_specaugment_bound_to_a_pitch_track_leaves_its_columns_alone():
    """Bound to LogMelPitch (side_dims = 2), SpecAugment's warp and masks change the spectral
    columns and never the last two (log2 F0, periodicity)."""
    torch.manual_seed(0)
    feats = torch.randn(8, 120, 66)
    spec = SpecAugment(freq_mask_param=20, time_mask_param=40, n_freq_masks=2, n_time_masks=2,
                       mask_value="mean", freq_warp=0.2).bind(LogMelPitch(n_mels=64, fixed_seconds=None)).train()
    out = spec(feats, torch.full((8,), 120))
    assert torch.equal(out[..., 64:], feats[..., 64:])
    assert not torch.equal(out[..., :64], feats[..., :64])


def _net(**kw):
    return ResNetHashNet(n_mels=40, n_classes=4, hash_bits=16, channels=(8, 16), pool_freq=False,
                         pitch_points=16, pitch_embed=8, **kw)


def _item(frames: int, contour: torch.Tensor) -> torch.Tensor:
    x = torch.randn(frames, 42)
    x[:, 40] = 7.0 + contour                               # log2 F0 around 128 Hz
    x[:, 41] = 0.95                                        # voiced
    return x


def test_pitch_branch_reads_the_contour_not_the_register():
    """The pitch branch takes the speaker's register out: the same contour an octave higher gives the
    same code, a falling contour instead of a rising one gives another; the code of an item does not
    depend on its batch's padding; the branch learns (its weights get a gradient); an input without
    the two columns is refused with its shape named."""
    torch.manual_seed(0)
    net = _net().eval()
    rise = torch.linspace(-0.3, 0.3, 60)
    item = _item(60, rise)
    octave_up = item.clone()
    octave_up[:, 40] += 1.0
    fall = item.clone()
    fall[:, 40] = 7.0 - rise
    with torch.no_grad():
        u = net(torch.stack([item, octave_up, fall]), torch.tensor([60, 60, 60])).hash_features
    assert torch.allclose(u[0], u[1], atol=1e-5)
    assert float((u[0] - u[2]).abs().max()) > 1e-3
    batch = torch.full((2, 90, 42), 3.0)
    batch[0, :60], batch[1] = item, _item(90, torch.zeros(90))
    with torch.no_grad():
        together = net(batch, torch.tensor([60, 90])).hash_features[0]
    assert torch.allclose(together, u[0], atol=1e-5)
    net.train()
    net(torch.stack([item, fall]), torch.tensor([60, 60])).hash_features.square().sum().backward()
    assert float(net.pitch_branch[0].weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match=r"\(B, T, 42\) log-mel and a pitch track"):
        net(torch.randn(1, 60, 40))
    with pytest.raises(ValueError, match="pitch_points"):
        ResNetHashNet(n_mels=40, pitch_points=-1)
