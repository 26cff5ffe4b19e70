"""Augmentation (speechret.augment) and silence trimming (speechret.frontend)."""

from __future__ import annotations

import math

import pytest
import torch

from speechret.augment import (AddNoise, CPOs, Mixup, RandomCrop, RandomGain, RandomLowpass, SpecAugment, SpeedPerturb,
                               TimeShift, WaveAugment)
from speechret.errors import ConfigError
from speechret.frontend import SilenceTrim

SR = 16000


def _tone(seconds: float, freq: float = 440.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return amp * torch.sin(2 * math.pi * freq * t)


@pytest.mark.parametrize("factor", [0.9, 0.95, 1.05, 1.1])
def test_speed_perturbation_changes_length_by_its_factor(factor):
    x = torch.stack([_tone(1.0), _tone(1.0)])
    lengths = torch.tensor([SR, SR // 2])
    op = SpeedPerturb(factors=[factor], p=1.0)
    y, new_len = op(x, lengths, torch.Generator().manual_seed(0))
    assert new_len.tolist() == [math.ceil(SR / factor), math.ceil(SR // 2 / factor)]
    assert y.shape[1] == int(new_len.max())
    assert bool((y[1, int(new_len[1]):] == 0).all())  # padding stays zero
    # the tone's pitch moves by the factor: dominant frequency 440 * factor
    spec = torch.fft.rfft(y[0, : int(new_len[0])])
    peak_hz = spec.abs().argmax().item() * SR / int(new_len[0])
    assert peak_hz == pytest.approx(440 * factor, abs=3)


def test_speed_perturbation_p0_is_identity():
    x = torch.randn(3, 800)
    y, lens = SpeedPerturb(p=0.0)(x, torch.tensor([800, 500, 300]), torch.Generator().manual_seed(1))
    assert lens.tolist() == [800, 500, 300] and torch.equal(y[0], x[0])


def test_random_gain_range_in_power():
    x = torch.randn(200, 1000)
    y, _ = RandomGain(-3.0, 3.0)(x, torch.full((200,), 1000), torch.Generator().manual_seed(0))
    ratio_db = 10 * torch.log10(y.pow(2).sum(1) / x.pow(2).sum(1))
    assert float(ratio_db.min()) >= -3.0 - 1e-4 and float(ratio_db.max()) <= 3.0 + 1e-4
    assert float(ratio_db.std()) > 1.0  # drawn per item


def test_time_shift_moves_content_and_length():
    x = torch.arange(1, 101, dtype=torch.float32).repeat(50, 1)
    op = TimeShift(max_shift_s=20 / SR, min_keep_s=10 / SR)
    y, lens = op(x, torch.full((50,), 100), torch.Generator().manual_seed(0))
    s = lens - 100
    assert int(s.abs().max()) <= 20 and len(set(s.tolist())) > 5
    for row, shift, n in zip(y, s.tolist(), lens.tolist()):
        first = 1 - shift if shift < 0 else 1
        assert row[max(shift, 0)].item() == first  # content starts after the zeros / skips samples
        assert bool((row[n:] == 0).all())


def test_random_crop_keeps_a_window_of_max_length():
    x = torch.arange(1, 1001, dtype=torch.float32).repeat(4, 1)
    y, lens = RandomCrop(max_seconds=300 / SR)(x, torch.tensor([1000, 1000, 200, 300]), torch.Generator().manual_seed(3))
    assert lens.tolist() == [300, 300, 200, 300]
    for row, n in zip(y, lens.tolist()):
        w = row[:n]
        assert torch.equal(w[1:] - w[:-1], torch.ones(n - 1))  # one contiguous window


def test_add_noise_snr_within_range():
    x = torch.randn(64, 4000)
    y, _ = AddNoise(10.0, 20.0, p=1.0)(x, torch.full((64,), 4000), torch.Generator().manual_seed(0))
    snr = 10 * torch.log10(x.pow(2).sum(1) / (y - x).pow(2).sum(1))
    assert float(snr.min()) > 9.5 and float(snr.max()) < 20.5


def _tone_db(y: torch.Tensor, x: torch.Tensor, freq: float) -> float:
    """Gain in dB of ``y`` over ``x`` at ``freq`` (integer cycles in the window: one FFT bin)."""
    k = round(freq * x.shape[-1] / SR)
    return float(20 * torch.log10(torch.fft.rfft(y).abs()[k] / torch.fft.rfft(x).abs()[k]))


@pytest.mark.parametrize("atten_db", [20.0, 45.0])
def test_random_lowpass_keeps_the_pass_band_and_cuts_the_stop_band_by_its_depth(atten_db):
    x = (_tone(1.0, 1000.0) + _tone(1.0, 2500.0) + _tone(1.0, 6000.0)).repeat(3, 1)
    lengths = torch.tensor([SR, SR, SR // 2])
    x[2, SR // 2:] = 0
    op = RandomLowpass(min_cutoff_hz=4000, max_cutoff_hz=4000, min_atten_db=atten_db, max_atten_db=atten_db, p=1.0)
    y, new_len = op(x, lengths, torch.Generator().manual_seed(0))
    assert torch.equal(new_len, lengths) and y.shape == x.shape
    for row in (0, 1):
        assert abs(_tone_db(y[row], x[row], 1000.0)) < 0.01 and abs(_tone_db(y[row], x[row], 2500.0)) < 0.01
        assert _tone_db(y[row], x[row], 6000.0) == pytest.approx(-atten_db, abs=0.05)
    assert bool((y[2, SR // 2:] == 0).all())  # padding stays zero


def test_random_lowpass_draws_per_item_within_its_ranges_and_p_zero_is_the_identity():
    x = _tone(0.5, 7000.0).repeat(200, 1)
    lengths = torch.full((200,), x.shape[1])
    y, _ = RandomLowpass(min_cutoff_hz=3500, max_cutoff_hz=6500, min_atten_db=20, max_atten_db=60, p=0.5)(
        x, lengths, torch.Generator().manual_seed(1))
    gain = torch.tensor([_tone_db(y[i], x[i], 7000.0) for i in range(200)])  # 7 kHz lies in every stop band
    cut = gain < -1
    assert 70 < int(cut.sum()) < 130  # about half the items (p=0.5)
    assert float(gain[cut].min()) > -60.1 and float(gain[cut].max()) < -19.9
    assert float(gain[~cut].abs().max()) < 1e-3
    assert float(gain[cut].std()) > 5  # depths are drawn per item
    z, _ = RandomLowpass(p=0.0)(x, lengths, torch.Generator().manual_seed(1))
    assert torch.equal(z, x)


def test_random_lowpass_rejects_a_cutoff_outside_the_band():
    with pytest.raises(ValueError, match="max_cutoff_hz"):
        RandomLowpass(max_cutoff_hz=9000, sample_rate=SR)
    with pytest.raises(ValueError, match="min_atten_db"):
        RandomLowpass(min_atten_db=30, max_atten_db=10)


def test_wave_augment_chain_is_identity_in_eval_and_seeded_in_train():
    aug = WaveAugment([SpeedPerturb(), RandomGain(), TimeShift(), AddNoise(p=1.0), CPOs(["requant_8bit"], p=1.0)], seed=7)
    x = torch.randn(4, 8000) * 0.1
    lengths = torch.tensor([8000, 6000, 5000, 4000])
    aug.eval()
    y, lens = aug(x, lengths)
    assert torch.equal(y, x) and torch.equal(lens, lengths)
    aug.train()
    y1, l1 = aug(x, lengths)
    aug.generator.manual_seed(7)
    y2, l2 = aug(x, lengths)
    assert torch.equal(y1, y2) and torch.equal(l1, l2) and not torch.equal(l1, lengths)


@pytest.mark.parametrize("placement", ["batch", "item"])
def test_specaugment_masks_never_exceed_their_widths(placement):
    torch.manual_seed(0)
    feats = torch.ones(64, 100, 40)  # (B, T, F)
    lengths = torch.randint(30, 101, (64,))
    sa = SpecAugment(freq_mask_param=7, time_mask_param=13, n_freq_masks=1, n_time_masks=1,
                     time_mask_placement=placement).train()
    out = sa(feats, lengths)
    masked = out == 0
    for b in range(64):
        rows = masked[b].all(1)           # time frames masked across every bin
        cols = masked[b, : int(lengths[b])].all(0)  # bins masked across every valid frame
        assert int(rows.sum()) < 13 and int(cols.sum()) < 7
        assert not bool(masked[b, int(lengths[b]):].any())  # padding is never masked
        if rows.any():
            idx = rows.nonzero().flatten()
            assert int(idx[-1] - idx[0]) + 1 == len(idx)  # one contiguous mask
    assert masked.any()
    assert torch.equal(sa.eval()(feats, lengths), feats)


def test_item_placed_time_masks_reach_a_short_item_whatever_its_batch():
    """A 20-frame word padded to 400 frames: torchaudio's batch placement draws the mask's start over all
    400, so it rarely lands on the word; ``time_mask_placement="item"`` draws it within the word's own
    frames, so the word is masked as much as when it is alone (width U[0, 10): 4.5 frames on average)."""
    torch.manual_seed(0)
    feats = torch.ones(400, 400, 8)
    lengths = torch.full((400,), 20)
    masked = {}
    for placement in ("batch", "item"):
        sa = SpecAugment(freq_mask_param=1, time_mask_param=10, n_freq_masks=0, n_time_masks=1,
                         time_mask_placement=placement).train()
        out = sa(feats, lengths)
        assert not bool((out[:, 20:] == 0).any())            # never in the padding
        masked[placement] = float((out[:, :20] == 0).all(2).sum(1).float().mean())
    alone = SpecAugment(freq_mask_param=1, time_mask_param=10, n_freq_masks=0, n_time_masks=1,
                        time_mask_placement="batch").train()(torch.ones(400, 20, 8), lengths)
    alone = float((alone == 0).all(2).sum(1).float().mean())
    assert masked["batch"] < 0.5 < 3.5 < masked["item"] < 5.5 and abs(masked["item"] - alone) < 0.6
    with pytest.raises(ConfigError, match="time_mask_placement"):
        SpecAugment(time_mask_placement="utterance")


def test_trim_removes_silence_around_a_tone_and_keeps_the_tone():
    tone = _tone(0.5)
    x = torch.zeros(2, SR * 2)
    x[0, 8000:16000] = tone
    x[1, 3200:11200] = tone * 0.01  # quiet: trimming is relative to the item's peak
    x += 1e-5 * torch.randn_like(x)  # a noise floor far below the threshold
    trim = SilenceTrim(margin_ms=20.0)
    y, lens = trim(x, torch.tensor([SR * 2, SR]))
    margin = int(0.02 * SR)
    for row, n, start in zip(y, lens.tolist(), [8000, 3200]):
        assert 8000 <= n <= 8000 + 2 * margin + trim.frame + trim.hop
        kept = row[:n]
        on = (kept.abs() > 1e-3).nonzero().flatten()
        # the whole tone survives: its samples are all inside the kept span
        assert int(on[-1] - on[0]) >= 8000 - 50
        assert int(on[0]) <= margin + trim.frame  # at most margin + one frame of silence kept before
    assert bool((y[1, int(lens[1]):] == 0).all())


def test_trim_leaves_silence_only_items_whole():
    x = torch.zeros(1, 4000)
    y, lens = SilenceTrim()(x)
    assert lens.tolist() == [4000] and torch.equal(y, x)


def test_frequency_warp_moves_a_spectral_peak_by_its_factor():
    """VTLP-style warp: a peak at bin 20 moves to bin 20·α; α = 1 is the identity; eval is off."""
    feats = torch.zeros(3, 5, 64)
    feats[:, :, 20] = 1.0
    aug = SpecAugment(n_freq_masks=0, n_time_masks=0, freq_warp=0.2)
    out = aug.warp(feats, torch.tensor([1.0, 1.1, 0.9]))
    assert torch.equal(out[0], feats[0])
    assert out[1, 0].argmax().item() == 22 and out[2, 0].argmax().item() == 18
    assert out.shape == feats.shape and torch.equal(aug.eval()(feats), feats)
    with pytest.raises(ValueError, match="freq_warp"):
        SpecAugment(freq_warp=1.5)


def test_specaugment_follows_the_axes_of_the_features_it_is_bound_to():
    """Paper B's image is [B, 3, mel, time]: bound to LogMelImage, a time mask blanks whole
    columns of every channel (axis 3) and a frequency mask whole rows (axis 2)."""
    from speechret.features import LogMelImage

    torch.manual_seed(0)
    feats = torch.ones(32, 3, 24, 50)
    only_time = SpecAugment(freq_mask_param=1, time_mask_param=10, n_freq_masks=0, n_time_masks=1).train()
    only_time.bind(LogMelImage(image_size=[24, 50]))
    assert (only_time.time_dim, only_time.freq_dim) == (3, 2)
    masked = only_time(feats) == 0
    assert masked.any()
    assert torch.equal(masked, masked[:, :1, :1, :].expand_as(masked))  # whole columns, all channels
    only_freq = SpecAugment(freq_mask_param=8, time_mask_param=1, n_freq_masks=1, n_time_masks=0).train()
    only_freq.bind(LogMelImage(image_size=[24, 50]))
    masked = only_freq(feats) == 0
    assert masked.any()
    assert torch.equal(masked, masked[:, :1, :, :1].expand_as(masked))  # whole rows, all channels
    explicit = SpecAugment(time_dim=1, freq_dim=2).bind(LogMelImage(image_size=[24, 50]))
    assert (explicit.time_dim, explicit.freq_dim) == (1, 2)  # a configured axis is kept


def test_frequency_warp_of_descending_rows_keeps_the_lowest_row_fixed():
    """Image rows run from high to low frequency (SVS): the warp is anchored at the bottom row
    (lowest frequency), as it is at bin 0 of an ascending axis."""
    from speechret.features import SVS

    x = torch.arange(10.0).repeat(2, 1, 1, 1, 1).transpose(-1, -2).contiguous()  # [2, 1, 1, 10(rows), 1]
    sa = SpecAugment(n_freq_masks=0, n_time_masks=0, freq_warp=0.5).bind(SVS(height=10, width=4))
    assert (sa.time_dim, sa.freq_dim, sa.freq_ascending) == (1, 3, False)
    out = sa.warp(x, torch.tensor([1.25, 0.8]))
    assert torch.equal(out[..., -1, :], x[..., -1, :])  # DC row unchanged
    asc = SpecAugment(freq_dim=3, freq_warp=0.5).warp(x.flip(3), torch.tensor([1.25, 0.8]))
    torch.testing.assert_close(out, asc.flip(3))


def test_specaugment_mean_fill_writes_each_items_mean_over_its_valid_cells():
    torch.manual_seed(0)
    feats = torch.randn(16, 60, 32) * 10 - 45  # absolute-dB-like log-mel, mean -45
    lengths = torch.randint(20, 61, (16,))
    feats = feats * (torch.arange(60)[None, :, None] < lengths[:, None, None])  # zero padding
    out = SpecAugment(freq_mask_param=6, time_mask_param=10, mask_value="mean").train()(feats, lengths)
    changed = out != feats
    assert changed.any()
    for b in range(16):
        n = int(lengths[b])
        mean = feats[b, :n].mean()
        assert torch.allclose(out[b][changed[b]], mean.expand(int(changed[b].sum())))
        assert not changed[b, n:].any()
    with pytest.raises(Exception, match="mask_value"):
        SpecAugment(mask_value="median")


def test_trim_max_gap_keeps_the_word_and_drops_clicks_apart_from_it():
    x = torch.zeros(1, SR * 2)
    x[0, 2000:2400] = 0.05 * torch.randn(400)       # a click at 0.125 s, 35 dB under the word
    x[0, 8000:12000] = _tone(0.25)                   # syllable 1
    x[0, 13000:16000] = _tone(0.1875)                # syllable 2, after a 62 ms closure
    x[0, 24000:24400] = 0.05 * torch.randn(400)     # a click at 1.5 s
    lengths = torch.tensor([SR * 2])
    whole = SilenceTrim(margin_ms=20.0).spans(x, lengths)
    word = SilenceTrim(margin_ms=20.0, max_gap_ms=200.0).spans(x, lengths)
    assert int(whole[0]) < 2000 and int(whole[1]) > 24400       # the plain rule keeps the clicks
    start, end = int(word[0]), int(word[1])
    assert 2400 < start <= 8000 and 16000 <= end < 24000         # the gap rule keeps both syllables only
    assert end - start <= 8000 + 2 * 320 + 400 + 160
    # a gap longer than max_gap splits the syllables: the louder one (with the peak) is kept
    x[0, 13000:16000] *= 0.5
    s2, e2 = (int(v) for v in SilenceTrim(margin_ms=20.0, max_gap_ms=20.0).spans(x, lengths))
    assert s2 <= 8000 and 12000 <= e2 < 13000
    with pytest.raises(ValueError, match="max_gap_ms"):
        SilenceTrim(max_gap_ms=-1)


def test_trim_energy_region_keeps_the_word_when_a_click_is_louder_than_it():
    """``region="energy"``: a recorder's click at the clip onset, louder at its peak than the word
    (DSPSpeech-20's 16307130198-01-03), takes the ``"peak"`` rule's crop; the region holding the
    most energy is the word.  A lone clip and the same clip in a padded batch get the same span."""
    torch.manual_seed(0)
    x = torch.zeros(2, SR * 2)
    x[0, 0:1600] = 0.9 * torch.randn(1600).clamp(-1, 1) * torch.exp(-torch.arange(1600) / 400.0)  # a 0.1 s click
    x[0, 8000:18000] = 0.3 * _tone(0.625)           # the word, 0.5-1.125 s, quieter than the click's peak
    x[1, 4000:9000] = 0.3 * _tone(0.3125)           # a word and nothing else: both rules agree
    lengths = torch.tensor([SR * 2, SR])
    kw = dict(margin_ms=20.0, max_gap_ms=200.0, noise_percentile=10.0, remove_dc=True)
    peak = torch.stack(SilenceTrim(**kw).spans(x, lengths), 1)
    energy_trim = SilenceTrim(region="energy", **kw)
    energy = torch.stack(energy_trim.spans(x, lengths), 1)
    assert int(peak[0, 1]) < 8000                                   # the peak rule keeps the click
    assert 1600 < int(energy[0, 0]) <= 8000 and 18000 <= int(energy[0, 1]) <= 18000 + 320 + 400 + 160
    assert torch.equal(peak[1], energy[1])
    lone = torch.stack(energy_trim.spans(x[1:, :SR], lengths[1:]), 1)
    assert torch.equal(lone[0], energy[1])
    with pytest.raises(ValueError, match="region"):
        SilenceTrim(region="loudest")


def test_trim_join_gap_keeps_a_slow_voices_two_syllables_and_not_a_click():
    """``join_gap_ms``: a syllable 0.35 s from the word region (a slow voice, DSPSpeech-20's
    16307130260) joins it when it holds ``join_share`` of its energy and spans ``join_min_ms``;
    a click 0.26 s before the word, too short, and a faint syllable, too weak, do not.
    The 200 ms gap alone keeps one syllable; a lone clip and the same clip in a padded batch agree."""
    torch.manual_seed(0)
    x = torch.zeros(3, SR * 2)
    click = 0.3 * torch.randn(320).clamp(-1, 1)
    for b, second in enumerate((0.6, 0.06, 0.6)):     # the second syllable's amplitude
        x[b, 4000:4320] = click                       # a 20 ms click, 0.26 s before the word
        x[b, 8480:13280] = 0.9 * _tone(0.3)           # syllable 1: 0.53-0.83 s
        x[b, 18880:22880] = second * _tone(0.25)      # syllable 2 after 0.35 s of silence
    lengths = torch.tensor([SR * 2, SR * 2, 26000])
    kw = dict(margin_ms=20.0, max_gap_ms=200.0, noise_percentile=10.0, remove_dc=True, region="energy")
    plain = torch.stack(SilenceTrim(**kw).spans(x, lengths), 1)
    trim = SilenceTrim(join_gap_ms=500.0, join_share=0.25, join_min_ms=80.0, **kw)
    joined = torch.stack(trim.spans(x, lengths), 1)
    for b in range(3):
        assert 4320 < int(plain[b, 0]) <= 8480 and 13280 <= int(plain[b, 1]) < 18880   # one syllable
    assert 4320 < int(joined[0, 0]) <= 8480 and 22880 <= int(joined[0, 1]) <= 22880 + 320 + 400 + 160
    assert torch.equal(joined[1], plain[1])     # under 1 % of the word region's energy: not joined
    assert torch.equal(joined[2, 0], joined[0, 0]) and int(joined[2, 1]) >= 22880
    lone = torch.stack(trim.spans(x[2:, :26000], lengths[2:]), 1)
    assert torch.equal(lone[0], joined[2])
    # the click would join on a small enough share: it is kept out by its length
    loose = SilenceTrim(join_gap_ms=500.0, join_share=0.01, join_min_ms=0.0, **kw)
    assert int(loose.spans(x, lengths)[0][0]) <= 4000
    strict = SilenceTrim(join_gap_ms=500.0, join_share=0.01, join_min_ms=80.0, **kw)
    assert torch.equal(torch.stack(strict.spans(x, lengths), 1)[0], joined[0])
    with pytest.raises(ValueError, match="join_gap_ms"):
        SilenceTrim(join_gap_ms=100.0, max_gap_ms=200.0)
    with pytest.raises(ValueError, match="join_gap_ms"):
        SilenceTrim(join_gap_ms=500.0)
    with pytest.raises(ValueError, match="join_share"):
        SilenceTrim(max_gap_ms=200.0, join_gap_ms=500.0, join_share=-0.1)


def test_trim_noise_floor_keeps_the_endpoints_of_a_degraded_copy():
    """``noise_percentile`` / ``remove_dc``: 16 -> 8 -> 16-bit re-quantization (an offset of half a
    coarse step on every sample) and white noise within ``threshold_db`` of the peak make every
    frame "speech" for the peak-relative rule, which then keeps the whole clip; with the noise
    level estimated from the quietest frames the endpoints stay those of the clean item."""
    from speechret.cpo.ops import Requantize

    torch.manual_seed(0)
    x = torch.zeros(2, SR * 2)
    x[:, 12000:20000] = 0.05 * _tone(0.5)                # the word at about -29 dBFS
    x += 1e-5 * torch.randn_like(x)
    noisy = x.clone()
    noisy[0] = Requantize(8)(x[0])
    noisy[1] += 10 ** (-55 / 20) * torch.randn(SR * 2)   # white noise 26 dB under the word
    lengths = torch.tensor([SR * 2, SR * 2])
    plain = SilenceTrim(margin_ms=20.0, max_gap_ms=200.0)
    robust = SilenceTrim(margin_ms=20.0, max_gap_ms=200.0, noise_percentile=10.0, noise_margin_db=10.0,
                         remove_dc=True)
    clean = torch.stack(robust.spans(x, lengths), 1)
    assert bool((clean[:, 0] <= 12000).all() and (clean[:, 1] >= 20000).all())
    assert bool((clean[:, 1] - clean[:, 0] <= 8000 + 2 * 320 + 400 + 160).all())
    assert torch.equal(clean, torch.stack(plain.spans(x, lengths), 1))  # a clean floor: the same crop
    degraded = torch.stack(plain.spans(noisy, lengths), 1)
    assert bool((degraded[:, 1] - degraded[:, 0] > SR).all())          # the plain rule keeps the noise
    assert (torch.stack(robust.spans(noisy, lengths), 1) - clean).abs().max() <= robust.hop
    with pytest.raises(ValueError, match="noise_percentile"):
        SilenceTrim(noise_percentile=100.0)


def test_mixup_superposes_each_item_with_its_partner_and_weighs_its_own_more():
    """x̃_i = λ x_i + (1 − λ) x_π(i) over the longer of the two lengths (the shorter one's padding
    counted as silence), one λ ≥ 0.5 per batch, π a permutation; the identity in eval() and at p=0."""
    torch.manual_seed(0)
    wave = torch.randn(6, 400)
    lengths = torch.tensor([400, 300, 120, 400, 50, 222])
    for i, n in enumerate(lengths.tolist()):
        wave[i, n:] = 0.0
    wave[2, 120:] = 7.0  # junk beyond an item's length must not leak into its partner's mix
    mix = Mixup(alpha=0.4, seed=3).train()
    out, lens, index, lam = mix(wave, lengths)
    assert sorted(index.tolist()) == list(range(6)) and 0.5 <= float(lam) <= 1.0
    clean = wave.clone()
    clean[2, 120:] = 0.0
    expect = float(lam) * wave + (1 - float(lam)) * clean[index]
    torch.testing.assert_close(out, expect)
    assert torch.equal(lens, torch.maximum(lengths, lengths[index]))
    same = mix.eval()(wave, lengths)
    assert same[0] is wave and same[2] is None and same[3] is None
    off = Mixup(alpha=0.4, p=0.0).train()(wave, lengths)
    assert off[0] is wave and off[2] is None
    with pytest.raises(ValueError, match="Mixup.alpha"):
        Mixup(alpha=0.0)


def test_specaugment_keeps_its_old_target_name_for_configs_written_before_its_module():
    """Checkpoints store ``_target_: speechret.augment.SpecAugment``; it still names the class."""
    from hydra.utils import get_class

    from speechret.spec_augment import SpecAugment as Moved

    assert get_class("speechret.augment.SpecAugment") is Moved is SpecAugment
