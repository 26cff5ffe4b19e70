"""speechret.cpo: physical properties of the content-preserving operations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechret.cpo import (
    CPO,
    PAPER_CPOS,
    CafeNoise,
    CarNoise,
    CPOAugment,
    Gain,
    GaussianNoise,
    MP3RoundTrip,
    Requantize,
    ResampleRoundTrip,
    WhiteNoise,
    build_cpo,
    expand_with_cpos,
    measure_snr_db,
    mp3_compression_level,
)

SR = 16000


def speech_like(n: int = 24000, f0: float = 130.0, seed: int = 0) -> torch.Tensor:
    """Voiced-speech-like signal: 12 harmonics with a 1/h roll-off, a slow f0 glide and a
    syllabic (~4 Hz) amplitude envelope with near-silent gaps."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / SR
    f = f0 * (1.0 + 0.05 * torch.sin(2 * torch.pi * 0.7 * t))
    phase = 2 * torch.pi * torch.cumsum(f, 0) / SR
    x = sum(torch.sin(h * phase + 6.28 * torch.rand(1, generator=g, dtype=torch.float64)) / h
            for h in range(1, 13))
    env = torch.sin(2 * torch.pi * 4.0 * t + seed).clamp_min(0) ** 2 + 0.01
    x = x * env
    return (0.3 * x / x.abs().max()).float()


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.stack([speech_like(f0=110.0 + 25 * i, seed=i) for i in range(4)])


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.double().numpy(), b.double().numpy())[0, 1])


def power(x: torch.Tensor) -> torch.Tensor:
    return (x.double() ** 2).mean(-1)


def spectrum(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.fft.rfft(x.double(), dim=-1).abs() ** 2
    return torch.fft.rfftfreq(x.shape[-1], 1.0 / SR, dtype=torch.float64), p


# ---------------------------------------------------------------------------------------------
# gain
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("db", [3.0, -3.0])
def test_gain_power_ratio(batch: torch.Tensor, db: float) -> None:
    y = Gain(db)(batch)
    ratio = power(y) / power(batch)
    torch.testing.assert_close(ratio, torch.full_like(ratio, 10 ** (db / 10)), rtol=1e-5, atol=0)
    assert build_cpo(f"gain_{db:+g}dB").name == f"gain_{db:+g}dB"


def test_gain_does_not_clip_unless_asked() -> None:
    x = torch.tensor([0.9, -0.95, 0.1])
    assert Gain(3)(x).abs().max() > 1.2
    assert Gain(3, clip=True)(x).abs().max() == 1.0


# ---------------------------------------------------------------------------------------------
# noise at an SNR
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gaussian", "white", "car", "cafe"])
@pytest.mark.parametrize("snr", [0, 10, 25])
def test_noise_snr_is_accurate(batch: torch.Tensor, kind: str, snr: int) -> None:
    op = build_cpo(f"{kind}_{snr}dB")
    assert op.name == f"{kind}_{snr}dB"
    y = op(batch, torch.Generator().manual_seed(snr))
    assert y.shape == batch.shape
    measured = measure_snr_db(batch, y)
    assert torch.all((measured - snr).abs() < 0.5), measured
    assert not torch.equal(y, batch)


def test_noise_snr_with_lengths_measures_valid_samples_only(batch: torch.Tensor) -> None:
    lengths = torch.tensor([24000, 15000, 9000, 4000])
    valid = torch.arange(batch.shape[-1])[None, :] < lengths[:, None]
    x = batch * valid
    for name in ["white_5dB", "car_5dB", "cafe_5dB"]:
        y = build_cpo(name)(x, torch.Generator().manual_seed(1), lengths=lengths)
        assert torch.all(y[~valid] == 0), name
        assert torch.all((measure_snr_db(x, y, lengths) - 5).abs() < 0.5), name


def test_car_noise_is_low_frequency(batch: torch.Tensor) -> None:
    noise = CarNoise(0)(batch, torch.Generator().manual_seed(0)) - batch
    freqs, p = spectrum(noise)
    below = p[:, freqs < 500].sum(-1) / p.sum(-1)
    assert torch.all(below > 0.9), below
    white = WhiteNoise(0)(batch, torch.Generator().manual_seed(0)) - batch
    freqs, pw = spectrum(white)
    assert torch.all(pw[:, freqs < 500].sum(-1) / pw.sum(-1) < 0.1)


def test_cafe_noise_is_babble_of_the_pool() -> None:
    """Pool talkers are tones at 700/1100/1900 Hz: the babble's power sits at those lines."""
    pool = [torch.sin(2 * torch.pi * f * torch.arange(n) / SR)
            for f, n in [(700, 9000), (1100, 13000), (1900, 5000)]]
    op = CafeNoise(0, pool=pool, n_talkers=4)
    assert op.pool_size == 3
    x = speech_like(16000, 150.0, 3)[None]
    noise = op(x, torch.Generator().manual_seed(0)) - x
    freqs, p = spectrum(noise[0])
    near = torch.zeros_like(freqs, dtype=torch.bool)
    for f in (700, 1100, 1900):
        near |= (freqs - f).abs() < 20
    assert p[near].sum() / p.sum() > 0.9
    assert (measure_snr_db(x, x + noise) - 0).abs() < 0.5


def test_cafe_noise_uses_the_other_items_not_itself() -> None:
    """Items are pure tones: each item's babble holds the other items' frequencies only."""
    t = torch.arange(16000) / SR
    freqs_hz = [500.0, 1300.0, 2100.0]
    x = torch.stack([0.3 * torch.sin(2 * torch.pi * f * t) for f in freqs_hz])
    noise = CafeNoise(5, n_talkers=5)(x, torch.Generator().manual_seed(2)) - x
    freqs, p = spectrum(noise)
    for i, f_self in enumerate(freqs_hz):
        own = p[i, (freqs - f_self).abs() < 20].sum() / p[i].sum()
        assert own < 1e-3, (i, own)


def test_cafe_noise_single_item_falls_back_to_speech_shaped_noise() -> None:
    x = speech_like(16000)[None]
    y = CafeNoise(10)(x, torch.Generator().manual_seed(0))
    assert (measure_snr_db(x, y) - 10).abs() < 0.5
    freqs, p = spectrum((y - x)[0])
    # speech-shaped: most power between 100 Hz and 2 kHz, little below 50 Hz
    assert p[(freqs > 100) & (freqs < 2000)].sum() / p.sum() > 0.6
    assert p[freqs < 50].sum() / p.sum() < 0.02


# ---------------------------------------------------------------------------------------------
# re-quantization, resampling, MP3
# ---------------------------------------------------------------------------------------------


def test_requantize_8bit_levels(batch: torch.Tensor) -> None:
    y = Requantize(8)(batch)
    levels = torch.unique(y)
    assert levels.numel() <= 256
    grid = levels * 128  # multiples of 1/128 (= 256 / 32768)
    torch.testing.assert_close(grid, grid.round(), rtol=0, atol=1e-4)
    assert (y - batch).abs().max() <= 1 / 128 + 1 / 32768  # truncation error < one coarse step
    # on the 16-bit grid, exactly the int16 >> 8 << 8 of the samples
    ints = torch.randint(-32768, 32768, (1000,), generator=torch.Generator().manual_seed(0))
    expect = ((ints >> 8) << 8).float() / 32768
    torch.testing.assert_close(Requantize(8)(ints.float() / 32768), expect, rtol=0, atol=0)
    near = Requantize(8, rounding="nearest")(batch)
    assert torch.unique(near).numel() <= 256
    assert (near - batch).abs().max() <= 0.5 / 128 + 1 / 32768


@pytest.mark.parametrize("n", [24000, 16001, 999])
def test_resample_roundtrip_preserves_length_and_content(n: int) -> None:
    x = speech_like(n)[None]
    y = ResampleRoundTrip(16000, 8000)(x)
    assert y.shape == x.shape
    assert corr(x[0], y[0]) > 0.9


def test_resample_roundtrip_removes_the_band_above_4khz() -> None:
    t = torch.arange(16000) / SR
    low = 0.3 * torch.sin(2 * torch.pi * 1000 * t)
    high = 0.3 * torch.sin(2 * torch.pi * 6000 * t)
    op = build_cpo("resample_8k")
    assert isinstance(op, ResampleRoundTrip) and op.name == "resample_8k"
    mid = slice(200, -200)
    assert power(op(high)[mid]) / power(high[mid]) < 1e-3
    assert power(op(low)[mid]) / power(low[mid]) == pytest.approx(1.0, rel=0.02)


def test_mp3_bitrate_mapping_and_encoded_size() -> None:
    assert mp3_compression_level(128, 16000) == pytest.approx((160 - 128.5) / 152)
    op = MP3RoundTrip(128, 16000)
    x = speech_like(4 * SR).numpy()
    data = op.encode(x)
    kbps = len(data) * 8 / (len(x) / SR) / 1000
    assert 120 < kbps < 140, kbps  # 128 kbps CBR plus the end-padding frames
    with pytest.raises(ValueError):
        MP3RoundTrip(320, 16000)  # MPEG-2 Layer III tops out at 160 kbps


@pytest.mark.parametrize("kbps", [128, 32])
def test_mp3_roundtrip_aligned_same_length(kbps: int) -> None:
    """128 kbps: decoder trims the codec delay via the LAME tag; 32 kbps: no tag fits, the known
    1105-sample delay is removed by us. Either way the output is time aligned."""
    x = torch.stack([speech_like(20001, 120.0, 0), speech_like(20001, 170.0, 1)])
    y = MP3RoundTrip(kbps)(x)
    assert y.shape == x.shape
    for i in range(2):
        assert corr(x[i], y[i]) > 0.9
        # aligned: best lag of the cross-correlation is 0
        c = np.correlate(y[i, 2000:10000].numpy(), x[i, 2000 - 50 : 10000 + 50].numpy(), "valid")
        assert int(np.argmax(c)) - 50 == 0


def test_lengths_keep_padding_zero_for_every_op(batch: torch.Tensor) -> None:
    lengths = torch.tensor([24000, 20000, 7001, 0])
    valid = torch.arange(batch.shape[-1])[None, :] < lengths[:, None]
    x = batch * valid
    for name in PAPER_CPOS["A"] + PAPER_CPOS["B"] + ["car_0dB", "cafe_0dB", "white_0dB"]:
        y = build_cpo(name)(x, torch.Generator().manual_seed(0), lengths=lengths)
        assert y.shape == x.shape
        assert torch.all(y[~valid] == 0), name
        assert torch.all(y[3] == 0), name


# ---------------------------------------------------------------------------------------------
# determinism, batching, names
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gaussian_30dB", "white_0dB", "car_5dB", "cafe_10dB"])
def test_seeded_reproducibility(batch: torch.Tensor, name: str) -> None:
    op = build_cpo(name)
    a = op(batch, torch.Generator().manual_seed(7))
    b = op(batch, torch.Generator().manual_seed(7))
    c = op(batch, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not op.deterministic


@pytest.mark.parametrize("name", ["gain_+3dB", "gain_-3dB", "requant_8bit", "resample_8k",
                                  "mp3_128k"])
def test_batched_equals_per_item(batch: torch.Tensor, name: str) -> None:
    op = build_cpo(name)
    assert op.deterministic
    lengths = torch.tensor([24000, 18000, 24000, 12345])
    x = batch * (torch.arange(batch.shape[-1])[None, :] < lengths[:, None])
    together = op(x, lengths=lengths)
    for i in range(x.shape[0]):
        n = int(lengths[i])
        alone = op(x[i, :n])  # (T,) input
        assert alone.shape == (n,)
        torch.testing.assert_close(together[i, :n], alone, rtol=0, atol=1e-5)


def test_names_roundtrip_and_paper_sets() -> None:
    assert PAPER_CPOS["A"] == ["mp3_128k", "requant_8bit", "gain_-3dB", "gain_+3dB", "gaussian_30dB"]
    assert PAPER_CPOS["B"] == ["gain_-3dB", "gain_+3dB", "mp3_128k", "resample_8k"]
    assert len(PAPER_CPOS["C"]) == 18 and "cafe_0dB" in PAPER_CPOS["C"] and "car_25dB" in PAPER_CPOS["C"]
    for names in PAPER_CPOS.values():
        for name in names:
            op = build_cpo(name)
            assert isinstance(op, CPO) and op.name == name
            assert build_cpo(op.name).name == op.name
    assert isinstance(build_cpo("GAUSSIAN_30DB"), GaussianNoise)
    assert isinstance(build_cpo("white_10dB"), WhiteNoise)
    assert build_cpo("white_2.5dB").snr_db == 2.5
    op = Gain(1)
    assert build_cpo(op) is op
    with pytest.raises(ValueError, match="unknown CPO"):
        build_cpo("reverb_0.3s")


# ---------------------------------------------------------------------------------------------
# CPOAugment and expansion
# ---------------------------------------------------------------------------------------------


def test_augment_p0_is_identity_and_p1_applies(batch: torch.Tensor) -> None:
    assert torch.equal(CPOAugment(["gain_+3dB", "white_10dB"], p=0.0, seed=0)(batch), batch)
    assert torch.equal(CPOAugment([], seed=0)(batch), batch)
    y = CPOAugment(["gain_+3dB"], p=1.0, seed=0)(batch)
    torch.testing.assert_close(y, batch * 10 ** (3 / 20))
    y2 = CPOAugment(["gain_-3dB", "white_10dB"], p=[1.0, 1.0], seed=0)(batch)
    assert torch.all((measure_snr_db(batch * 10 ** (-3 / 20), y2) - 10).abs() < 0.5)


def test_augment_selects_items_with_probability(batch: torch.Tensor) -> None:
    x = batch.repeat(50, 1)  # 200 items
    aug = CPOAugment(["gain_+3dB"], p=0.3, seed=3)
    changed = (aug(x) != x).any(-1).float().mean().item()
    assert 0.18 < changed < 0.42
    one = CPOAugment(["gain_+3dB", "gain_-3dB"], p=1.0, seed=3, mode="one")
    ratio = power(one(x)) / power(x)
    up = torch.isclose(ratio, torch.tensor(10 ** 0.3, dtype=torch.float64), rtol=1e-4)
    down = torch.isclose(ratio, torch.tensor(10 ** -0.3, dtype=torch.float64), rtol=1e-4)
    assert torch.all(up ^ down) and 0.3 < up.float().mean() < 0.7  # exactly one op each


def test_augment_is_seeded(batch: torch.Tensor) -> None:
    ops = ["white_20dB", "car_10dB", "gain_+3dB"]
    a = CPOAugment(ops, p=0.5, seed=11)(batch)
    b = CPOAugment(ops, p=0.5, seed=11)(batch)
    c = CPOAugment(ops, p=0.5, seed=12)(batch)
    assert torch.equal(a, b) and not torch.equal(a, c)
    aug = CPOAugment(ops, p=0.5, seed=11)
    first = aug(batch)
    assert not torch.equal(aug(batch), first)  # the stream advances
    aug.reset()
    assert torch.equal(aug(batch), first)


def test_augment_lengths_and_train_only(batch: torch.Tensor) -> None:
    lengths = torch.tensor([24000, 1000, 5000, 23999])
    valid = torch.arange(batch.shape[-1])[None, :] < lengths[:, None]
    x = batch * valid
    aug = CPOAugment(["cafe_0dB", "car_0dB", "mp3_128k"], p=1.0, seed=0, train_only=True)
    y = aug(x, lengths)
    assert torch.all(y[~valid] == 0) and not torch.equal(y, x)
    aug.eval()
    assert torch.equal(aug(x, lengths), x)


def test_expand_with_cpos(batch: torch.Tensor) -> None:
    ops = ["gain_-3dB", "gain_+3dB", "resample_8k"]
    waves, idx = expand_with_cpos(batch, ops, torch.Generator().manual_seed(0),
                                  include_original=True)
    b = batch.shape[0]
    assert waves.shape == (4 * b, batch.shape[-1])
    assert idx.tolist() == [-1] * b + [0] * b + [1] * b + [2] * b
    assert torch.equal(waves[:b], batch)
    torch.testing.assert_close(waves[b : 2 * b], Gain(-3)(batch))
    torch.testing.assert_close(waves[3 * b :], ResampleRoundTrip()(batch))
    w2, i2 = expand_with_cpos(batch, PAPER_CPOS["B"])
    assert w2.shape[0] == 4 * b and i2.max() == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_with_a_cpu_generator(batch: torch.Tensor) -> None:
    lengths = torch.tensor([24000, 20000, 7001, 100])
    for name in ["white_10dB", "car_10dB", "cafe_10dB", "resample_8k", "requant_8bit", "mp3_128k"]:
        op = build_cpo(name)
        cpu = op(batch, torch.Generator().manual_seed(0), lengths=lengths)
        gpu = op(batch.cuda(), torch.Generator().manual_seed(0), lengths=lengths.cuda())
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
    aug = CPOAugment(PAPER_CPOS["A"], p=0.5, seed=0)
    torch.testing.assert_close(aug.cuda()(batch.cuda(), lengths.cuda()).cpu(),
                               CPOAugment(PAPER_CPOS["A"], p=0.5, seed=0)(batch, lengths),
                               rtol=1e-4, atol=1e-4)


def test_config_nodes_and_config_errors() -> None:
    """Names parse into Hydra ``_target_`` nodes; bad names / parameters raise ConfigError."""
    from omegaconf import OmegaConf

    from speechret.cpo import parse_cpo_name
    from speechret.errors import ConfigError

    node = parse_cpo_name("gain_+3dB")
    assert node["_target_"].endswith("Gain") and node["db"] == 3.0
    assert build_cpo(node).name == "gain_+3dB"
    car = build_cpo(OmegaConf.create({"_target_": "speechret.cpo.CarNoise", "snr_db": 5}))
    assert isinstance(car, CarNoise) and car.name == "car_5dB"
    for bad, problem in [("reverb_0.3s", "unknown CPO"), ("mp3_320k", "320 kbps"),
                         ("requant_20bit", "bits must lie"), ({"db": 2}, "no _target_"),
                         ({"_target_": "speechret.cpo.Gain", "dbb": 2}, "dbb")]:
        with pytest.raises(ConfigError, match=problem):
            build_cpo(bad)
    with pytest.raises(ConfigError, match="requant_20bit"):
        build_cpo("requant_20bit")
    with pytest.raises(ConfigError, match="mode"):
        CPOAugment(["gain_+3dB"], mode="all")
