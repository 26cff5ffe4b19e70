"""Tests of speechret.features: shapes, numpy/librosa-equivalent references, paper C's SVS steps,
padding independence, configs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F

from speechret.errors import ConfigError
from speechret.features import (
    FEATURES_CONF_DIR,
    MFCC,
    SVS,
    FeatureExtractor,
    LogMel,
    LogMelImage,
    MFCCSequence,
    build_features,
    fix_length,
    lengths_to_mask,
    load_preset,
    preset_names,
    resize_weights,
)

SR = 16000
REPO = Path(__file__).resolve().parents[1]
PRESETS = preset_names()  # conf/features/<name>.yaml
LENGTHS = [SR, int(2.5 * SR), 5 * SR]  # 1 s, 2.5 s, 5 s


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    """Harmonic tone with a moving pitch, amplitude envelope and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 2.3 * t) ** 2
    return (0.2 * env * x + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    T = max(LENGTHS)
    wave = torch.zeros(len(LENGTHS), T)
    for i, n in enumerate(LENGTHS):
        wave[i, :n] = torch.from_numpy(_speechlike(n, seed=i))
        wave[i, n:] = 0.5  # garbage in the padding: must be ignored
    return wave, torch.tensor(LENGTHS)


# ---------------------------------------------------------------------------------------------
# independent numpy reference of librosa's melspectrogram / power_to_db / mfcc
# ---------------------------------------------------------------------------------------------


def _hz_to_mel_slaney(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz_slaney(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def _librosa_mel_filters(sr, n_fft, n_mels):
    """``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)`` (htk=False, norm="slaney")."""
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(0.0), _hz_to_mel_slaney(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    w = np.zeros((n_mels, len(fftfreqs)))
    for i in range(n_mels):
        w[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    w *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return w


def _np_logmel(y, *, sr=SR, n_fft=512, win=400, hop=160, n_mels=20, top_db=80.0, pre=None):
    y = np.asarray(y, dtype=np.float64)
    if pre:
        y = np.concatenate([y[:1], y[1:] - pre * y[:-1]])
    n = np.arange(win)
    w = 0.54 - 0.46 * np.cos(2 * np.pi * n / win)  # periodic Hamming (scipy fftbins=True)
    lpad = (n_fft - win) // 2
    w = np.pad(w, (lpad, n_fft - win - lpad))
    yp = np.pad(y, n_fft // 2)
    n_frames = 1 + len(y) // hop
    frames = np.stack([yp[i * hop : i * hop + n_fft] for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames * w, axis=1)) ** 2  # [F, K]
    mel = power @ _librosa_mel_filters(sr, n_fft, n_mels).T  # [F, M]
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    return np.maximum(db, db.max() - top_db)


# ---------------------------------------------------------------------------------------------
# utilities
# ---------------------------------------------------------------------------------------------


def test_lengths_to_mask():
    m = lengths_to_mask(torch.tensor([0, 2, 3]), 4)
    assert m.tolist() == [[False] * 4, [True, True, False, False], [True, True, True, False]]


def test_resize_weights_match_interpolate():
    x = torch.randn(2, 1, 40, 30)
    for out in [(77, 155), (20, 11), (224, 224)]:
        wh = resize_weights(out[0], torch.tensor([40]), 40)[0]
        ww = resize_weights(out[1], torch.tensor([30]), 30)[0]
        got = wh @ x @ ww.t()
        ref = F.interpolate(x, size=out, mode="bilinear", align_corners=False, antialias=True)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    # per-item valid length: only the first n entries are used
    w = resize_weights(8, torch.tensor([5, 10]), 10)
    assert torch.all(w[0, :, 5:] == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 8))


def test_fix_length_modes():
    w = torch.arange(1, 11, dtype=torch.float32)[None].repeat(2, 1)
    L = torch.tensor([4, 10])
    z = fix_length(w, L, 6)
    assert z.tolist() == [[1, 2, 3, 4, 0, 0], [1, 2, 3, 4, 5, 6]]
    r = fix_length(w, L, 6, pad_mode="repeat", crop="center")
    assert r.tolist() == [[1, 2, 3, 4, 1, 2], [3, 4, 5, 6, 7, 8]]


# ---------------------------------------------------------------------------------------------
# paper A
# ---------------------------------------------------------------------------------------------


def test_logmel_mfcc_shapes(batch):
    wave, L = batch
    for ext, dim in [(LogMel(), 20), (MFCC(), 20)]:
        feats, fl = ext(wave, L)
        assert feats.shape == (3, 401, dim) and feats.dtype == torch.float32
        assert fl.tolist() == [401] * 3
        assert ext.output_shape(12345) == (401, dim) and ext.num_frames(SR) == 401
        assert torch.isfinite(feats).all()


def test_logmel_matches_numpy_librosa_reference(batch):
    wave, L = batch
    feats, _ = LogMel()(wave, L)
    y = wave[1, : L[1]].numpy()  # 2.5 s -> zero padded to 4 s
    ref = _np_logmel(np.pad(y, (0, 4 * SR - len(y))))
    assert ref.shape == (401, 20)
    np.testing.assert_allclose(feats[1].numpy(), ref, atol=5e-4, rtol=0)
    # torchaudio's filterbank agrees with the independent librosa formula
    import torchaudio.functional as AF

    fb = AF.melscale_fbanks(257, 0.0, 8000.0, 20, SR, norm="slaney", mel_scale="slaney").numpy()
    np.testing.assert_allclose(fb.T, _librosa_mel_filters(SR, 512, 20), atol=1e-6)


def test_mfcc_matches_numpy_reference(batch):
    wave, L = batch
    feats, _ = MFCC()(wave, L)
    y = wave[0, : L[0]].numpy()
    db = _np_logmel(np.pad(y, (0, 4 * SR - len(y))), n_mels=40)
    ref = scipy.fft.dct(db, type=2, norm="ortho", axis=1)[:, :20]
    np.testing.assert_allclose(feats[0].numpy(), ref, atol=2e-3, rtol=0)


def test_fixed_length_policy(batch):
    wave, L = batch
    ext = LogMel(crop="start")
    full, _ = ext(wave[2:3], L[2:3])  # 5 s clip
    first4, _ = ext(wave[2:3, : 4 * SR])
    torch.testing.assert_close(full, first4)
    mid, _ = LogMel(crop="center")(wave[2:3], L[2:3])
    torch.testing.assert_close(mid, ext(wave[2:3, SR // 2 : SR // 2 + 4 * SR])[0])
    # a 1 s clip zero-padded vs. tiled
    z, _ = ext(wave[0:1], L[0:1])
    r, _ = LogMel(pad_mode="repeat")(wave[0:1], L[0:1])
    torch.testing.assert_close(z[:, :90], r[:, :90])
    assert not torch.allclose(z[:, 150:], r[:, 150:])
    # natural length
    v, vl = LogMel(fixed_seconds=None)(wave, L)
    assert vl.tolist() == [1 + n // 160 for n in LENGTHS] and v.shape == (3, 501, 20)
    assert torch.all(v[0, vl[0] :] == 0)


# ---------------------------------------------------------------------------------------------
# paper B
# ---------------------------------------------------------------------------------------------


def test_logmel_image(batch):
    wave, L = batch
    ext = LogMelImage()
    img, il = ext(wave, L)
    assert img.shape == (3, 3, 224, 224) and il.tolist() == [224] * 3
    assert ext.output_shape(SR) == (3, 224, 224)
    assert torch.isfinite(img).all() and img.min() >= 0 and img.max() <= 1
    short = torch.from_numpy(_speechlike(int(0.3 * SR)))[None]
    s, _ = ext(short)
    assert s.shape == (1, 3, 224, 224) and torch.isfinite(s).all()
    # channel 0 is the resized log-mel of the valid frames (numpy reference, pre-emphasis 0.97)
    y = wave[0, : L[0]].numpy()
    db = _np_logmel(y, n_fft=1024, win=1024, hop=512, n_mels=128, pre=0.97).T  # [128, 32]
    ref = F.interpolate(torch.from_numpy(db)[None, None].float(), size=(224, 224), mode="bilinear")[0, 0]
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    torch.testing.assert_close(img[0, 0], ref, atol=2e-4, rtol=0)
    rep, _ = LogMelImage(channels="repeat", normalize="standardize")(wave[:1], L[:1])
    torch.testing.assert_close(rep[0, 0], rep[0, 2])
    assert abs(float(rep.mean())) < 1e-4


# ---------------------------------------------------------------------------------------------
# paper C
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def svs() -> SVS:
    return SVS()


def test_svs_frame_count_formula(svs):
    for n in [1, 4000, 7999, 8000, 8001, 9000, 9001, 16000, 40000, 80000]:
        m = 1 + math.ceil(max(n - 8000, 0) / 1000)
        assert svs.num_frames(n) == m
        assert svs.frame_counts(torch.tensor([n])).item() == m
    assert SVS(max_frames=5).num_frames(80000) == 5


def test_svs_shapes_padding_and_range(batch, svs):
    wave, L = batch
    out, m = svs(wave, L)
    assert m.tolist() == [9, 33, 73]
    assert out.shape == (3, 73, 3, 77, 155)
    assert svs.output_shape(5 * SR) == (73, 3, 77, 155)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    for i, mi in enumerate(m.tolist()):
        assert torch.all(out[i, mi:] == 0)
        assert torch.all(out[i, :mi].flatten(1).amax(1) > 0)
    mag, _ = SVS(mode="magnitude")(wave[:1], L[:1])
    assert mag.shape == (1, 9, 1, 77, 155)
    a, ma = SVS(width=77, height=38)(wave, L)
    assert a.shape == (3, 73, 3, 38, 77) and ma.tolist() == [9, 33, 73]


def test_svs_last_frame_zero_padded(svs):
    n = 8000 + 1000 * 3 + 10  # m = 5, the last frame has 10 + 7000 ... samples, the rest zero
    x = torch.from_numpy(_speechlike(n, 3))[None]
    got, m = svs(x)
    assert m.item() == 5
    padded = F.pad(x, (0, 8000 + 4 * 1000 - n))
    last = svs.frame_images(padded[:, 4000:12000])
    torch.testing.assert_close(got[0, 4], last[0])
    # garbage after the length does not change anything
    y = torch.cat([x, torch.ones(1, 3000)], 1)
    torch.testing.assert_close(svs(y, torch.tensor([n]))[0], got)


def test_svs_gain_invariance(batch, svs):
    wave, L = batch
    a, _ = svs(wave[1:2], L[1:2])
    b, _ = svs(3.0 * wave[1:2], L[1:2])
    # identical up to float rounding, which can flip a value across one of the 256 colormap levels
    assert (a != b).float().mean() < 1e-3 and (a - b).abs().max() < 0.02
    mag = SVS(mode="magnitude")
    torch.testing.assert_close(mag(wave[1:2], L[1:2])[0], mag(0.1 * wave[1:2], L[1:2])[0], atol=1e-4, rtol=0)


def test_svs_tone_row():
    ext = SVS(mode="magnitude")
    t = torch.arange(SR) / SR
    for hz in (1000.0, 3000.0):
        tone = 0.5 * torch.sin(2 * math.pi * hz * t)
        img, _ = ext(tone[None])
        rows = img[0, 0, 0].mean(-1)  # [77]
        assert abs(int(rows.argmax()) - ext.row_of_frequency(hz)) <= 1.0
    assert ext.row_of_frequency(1000.0) > ext.row_of_frequency(3000.0)  # low frequencies at the bottom


def test_svs_silent_frames_and_rgb_lut(svs):
    x = torch.zeros(1, 12000)
    out, m = svs(x)
    assert m.item() == 5 and torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 0, :, 0, 0], svs.lut[0])  # bottom of the colour scale
    mag, _ = SVS(mode="magnitude")(x)
    assert torch.all(mag == 0)


# ---------------------------------------------------------------------------------------------
# paper C baseline
# ---------------------------------------------------------------------------------------------


def test_mfcc_sequence(batch):
    wave, L = batch
    ext = MFCCSequence()
    feats, fl = ext(wave, L)
    assert fl.tolist() == [1 + n // 160 for n in LENGTHS]
    assert feats.shape == (3, 501, 39) and ext.output_shape(SR) == (101, 39)
    assert torch.isfinite(feats).all()
    for i, n in enumerate(fl.tolist()):
        valid = feats[i, :n]
        torch.testing.assert_close(valid.mean(0), torch.zeros(39), atol=1e-4, rtol=0)
        torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(39), atol=1e-3, rtol=0)
        assert torch.all(feats[i, n:] == 0)
    assert MFCCSequence(deltas=0, cmvn=False)(wave, L)[0].shape[-1] == 13


# ---------------------------------------------------------------------------------------------
# cross-cutting
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_batched_equals_per_item(batch, name):
    wave, L = batch
    ext = build_features(name)
    feats, fl = ext(wave, L)
    for i in range(len(L)):
        one, ol = ext(wave[i : i + 1, : L[i]])
        assert ol.item() == fl[i].item()
        n = one.shape[1] if one.dim() in (3, 5) else None
        got = feats[i : i + 1, :n] if n is not None else feats[i : i + 1]
        torch.testing.assert_close(got, one, atol=1e-4, rtol=1e-4)


def test_autocast_bf16_runs_in_float32(batch):
    wave, L = batch
    ext = LogMel()
    ref, _ = ext(wave, L)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = ext(wave, L)  # the mel matmul would run in bf16 if autocast were not disabled
        got2, _ = SVS(width=77, height=38)(wave[:1, :9000].to(torch.bfloat16))  # bf16 input accepted
    assert got.dtype == torch.float32 and got2.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_buffers_not_in_state_dict():
    for name in PRESETS:
        assert build_features(name).state_dict() == {}


#: what each paper preset must equal: the class with its defaults (plus these arguments)
PAPER_PRESETS = {
    "logmel": (LogMel, {}),
    "mfcc": (MFCC, {}),
    "logmel_image": (LogMelImage, {}),
    "svs": (SVS, {}),
    "svs_aishell": (SVS, {"width": 77, "height": 38}),
    "mfcc_seq": (MFCCSequence, {}),
}


def test_yaml_configs_match_presets():
    import hydra.utils
    from omegaconf import OmegaConf

    assert FEATURES_CONF_DIR.resolve() == (REPO / "conf" / "features").resolve()
    assert set(PAPER_PRESETS) <= set(PRESETS) and "logmel64" in PRESETS
    for name in PRESETS:
        cfg = OmegaConf.create(load_preset(name))
        ext = build_features(cfg)
        ref = build_features(name)
        assert hydra.utils.instantiate(cfg).config == ref.config
        assert type(ext) is type(ref)
        assert ext.config == ref.config, name
        # every constructor argument is spelled out in the YAML (after its defaults list)
        assert set(OmegaConf.to_container(cfg)) == set(ref.config), name
        raw = OmegaConf.load(REPO / "conf" / "features" / f"{name}.yaml")
        if "defaults" not in raw:
            assert build_features(raw).config == ref.config, name
    for name, (cls, kwargs) in PAPER_PRESETS.items():
        assert build_features(name).config == cls(**kwargs).config, name


def test_logmel64_defaults_list_matches_hydra_compose():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    cfg = load_preset("logmel64")
    assert cfg == {**load_preset("logmel"), "n_mels": 64, "fixed_seconds": None, "f_min": 20.0, "pad_value": 0.0}
    with initialize_config_dir(config_dir=str(FEATURES_CONF_DIR), version_base=None):
        for name in PRESETS:  # load_preset composes a preset exactly as Hydra does
            assert load_preset(name) == OmegaConf.to_container(compose(config_name=name), resolve=True), name


def test_config_targets_name_the_package():
    """Saved configs (checkpoints, library metadata) name ``speechret.features.<Class>``."""
    for cls in (LogMel, MFCC, LogMelImage, SVS, MFCCSequence):
        assert cls().config["_target_"] == f"speechret.features.{cls.__name__}"


def test_build_features_forms():
    from omegaconf import OmegaConf

    assert isinstance(build_features("SVS"), SVS)  # svs.yaml (preset names are case-insensitive)
    e = build_features({"name": "svs_aishell", "mode": "magnitude"})
    assert e.output_shape(8000) == (1, 1, 38, 77)
    again = build_features(e.config)
    assert again.config == e.config
    assert build_features(e) is e
    rebuilt = build_features(e, max_frames=3)
    assert rebuilt is not e and rebuilt.config == {**e.config, "max_frames": 3}
    d = build_features(OmegaConf.create({"_target_": "speechret.features.LogMel"}), n_mels=32)
    assert type(d) is LogMel and d.config["n_mels"] == 32
    with pytest.raises(ValueError):
        build_features("nope")
    with pytest.raises(TypeError):
        build_features({"_target_": "speechret.features.LogMel", "typo": 1})


@pytest.mark.parametrize(
    "cfg, needle",
    [
        ("nope", "'nope'"),
        ("../train", "'../train'"),
        ({"n_mels": 20}, "'_target_' or 'name'"),
        ({"name": "nope", "n_mels": 20}, "name='nope'"),
        ({"_target_": "speechret.features.Nope"}, "_target_='speechret.features.Nope'"),
        ({"_target_": "collections.OrderedDict"}, "_target_='collections.OrderedDict'"),
        (42, "int"),
    ],
)
def test_build_features_config_errors(cfg, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        build_features(cfg)


def test_features_layer_imports():
    """speechret.features depends only on the low layers (audio, torchaudio_api, errors, fileio, config)."""
    import ast

    allowed = {"speechret.audio", "speechret.torchaudio_api", "speechret.errors", "speechret.fileio", "speechret.config"}
    pkg = REPO / "speechret" / "features"
    for path in pkg.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 500, path.name
        for node in ast.walk(ast.parse(path.read_text())):
            mods = []
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            for m in mods:
                if m.startswith("speechret") and m != "speechret":
                    ok = m.startswith("speechret.features") or any(m == a or m.startswith(a + ".") for a in allowed)
                    assert ok, f"{path.name} imports {m}"
    assert issubclass(ConfigError, ValueError) and FeatureExtractor.__module__ == "speechret.features.base"
