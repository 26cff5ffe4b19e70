"""Tests of speechret.evaluate.security (paper A §5.4: key space, Fig. 10, Table 7 PESQ)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from speechret.crypto import (
    AesGcmCipher,
    HyperchaoticCipher,
    HyperchaoticKey,
    RosslerCipher,
    RosslerKey,
    build_cipher,
)
from speechret.evaluate.security import (
    adjacent_correlation,
    ciphertext_as_audio,
    evaluate_cipher,
    key_space,
    key_space_log2,
    lqo_to_raw,
    pesq_mos,
    raw_to_lqo,
    to_pcm16,
)

SR = 16000


def vowel(seconds: float = 3.0, seed: int = 0, peak: float = 0.6) -> np.ndarray:
    """Speech-like float32 wave: harmonics of a gliding f0 under a 4 Hz syllabic envelope + noise."""
    n = int(seconds * SR)
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 8))
    x = x * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) + 0.01 * rng.standard_normal(n)
    return (x / np.abs(x).max() * peak).astype(np.float32)


@pytest.fixture(scope="module")
def ciphers(tmp_path_factory):
    # A fixed AES key (with ``fixed_nonce``) makes the AES-GCM ciphertext -- and so the PESQ of
    # encrypted speech -- reproducible: PESQ of a noise-like signal against speech swings between
    # about 0.3 and 2.7 from one random key to the next, so a random key made the test flaky.
    key = tmp_path_factory.mktemp("keys") / "eval.key"
    key.write_bytes(bytes(range(32)))
    key.chmod(0o600)  # key files must be owner-only
    return {
        "aes_gcm": AesGcmCipher(key),
        "hyperchaotic": HyperchaoticCipher(HyperchaoticKey.paper_demo()),
        "rossler": RosslerCipher(RosslerKey.demo()),
    }


@pytest.fixture
def fixed_nonce(monkeypatch):
    """Make AES-GCM nonces deterministic (os.urandom in aead) so encrypted-speech PESQ is reproducible."""
    import speechret.crypto.aead as aead

    rng = np.random.default_rng(1234)
    monkeypatch.setattr(aead.os, "urandom", lambda n: rng.integers(0, 256, n, dtype=np.uint8).tobytes())


# ------------------------------------------------------------------------------ correlation
def test_adjacent_correlation():
    t = np.arange(16000) / SR
    assert adjacent_correlation(np.sin(2 * np.pi * 200 * t)) > 0.99
    noise = np.random.default_rng(0).standard_normal(50000)
    assert abs(adjacent_correlation(noise)) < 0.02
    alt = np.where(np.arange(1000) % 2 == 0, 1.0, -1.0)  # x[i] = -x[i-1]
    assert adjacent_correlation(alt) == pytest.approx(-1.0, abs=1e-12)
    ramp = np.arange(100, dtype=np.float64)
    assert adjacent_correlation(ramp) == pytest.approx(1.0, abs=1e-12)
    assert math.isnan(adjacent_correlation(np.ones(100)))
    assert math.isnan(adjacent_correlation([1.0, 2.0]))


# ------------------------------------------------------------------------------ key space
def test_key_space_paper_a_arithmetic():
    ks = key_space("hyperchaotic")
    # paper A §5.4: 2e12 x 2e12 x 2e12 x 2e12 = 16e48 "≈ 2^164"
    assert ks["log2"] == pytest.approx(math.log2((2e12) ** 4), abs=1e-9)
    assert ks["log2"] == pytest.approx(163.45, abs=0.01)
    assert round(ks["log2"]) == 163 and math.ceil(ks["log2"]) == 164
    assert 2.0 ** ks["log2"] == pytest.approx(1.6e49, rel=1e-9)
    assert "164" in ks["formula"] and len(ks["components"]) == 4
    assert key_space("rossler")["log2"] == pytest.approx(math.log2((2e12) ** 3))
    assert key_space("aes_gcm")["log2"] == 256.0
    assert key_space(RosslerCipher(RosslerKey.demo()))["cipher"] == "rossler"
    assert key_space_log2(1, decimals=0, range_width=1024) == pytest.approx(10.0)
    assert key_space_log2(2, decimals=3, range_width=1.0) == pytest.approx(2 * math.log2(1000))
    assert key_space("hyperchaotic")["log2"] > 100  # paper A: > 2^100 resists exhaustive search
    with pytest.raises(ValueError):
        key_space("des")


# ------------------------------------------------------------------------------ PESQ
def test_lqo_mapping_inverse():
    for mode in ("nb", "wb"):
        for raw in (-0.5, 0.0, 0.8888, 2.5, 4.4997, 4.5):
            assert lqo_to_raw(raw_to_lqo(raw, mode), mode) == pytest.approx(raw, abs=1e-9)
    # P.862.1: raw 4.5 -> MOS-LQO 4.5486 (what the pesq package returns for identical signals)
    assert raw_to_lqo(4.5, "nb") == pytest.approx(4.5486, abs=1e-4)
    assert raw_to_lqo(-0.5, "nb") > 1.0  # LQO cannot go below ~1.02: paper A's 0.8888 is raw


def test_pesq_identity_noise_and_failures(caplog):
    ref = vowel(3.0)
    same_raw = pesq_mos(ref, ref)
    assert 4.4 <= same_raw <= 4.5 + 1e-5
    assert pesq_mos(ref, ref, scale="lqo") == pytest.approx(4.5486, abs=1e-3)
    assert pesq_mos(to_pcm16(ref), to_pcm16(ref)) >= 4.4  # int16 input
    noise = np.random.default_rng(3).uniform(-1, 1, ref.size)
    assert pesq_mos(ref, noise) < 2.5 < same_raw - 1.5
    assert pesq_mos(ref, ref, mode="wb") >= 4.4
    with caplog.at_level(logging.WARNING, logger="speechret.evaluate.security"):
        assert math.isnan(pesq_mos(ref, np.zeros_like(ref)))          # nothing to score
        assert math.isnan(pesq_mos(ref[:1000], ref[:1000]))           # < 0.25 s: BufferTooShort
    assert "NaN" in caplog.text
    with pytest.raises(ValueError):
        pesq_mos(ref, ref, sample_rate=8000, mode="wb")
    with pytest.raises(ValueError):
        pesq_mos(ref, ref, scale="mos")


# ------------------------------------------------------------------------------ ciphertext audio
@pytest.mark.parametrize("name", ["aes_gcm", "hyperchaotic", "rossler"])
@pytest.mark.parametrize("n", [1, 300, 8000])
def test_ciphertext_as_audio(ciphers, name, n):
    pcm = to_pcm16(vowel(1.0)[:n])
    c = ciphers[name]
    y = ciphertext_as_audio(c, pcm)
    assert y.dtype == np.float32 and y.shape == (n,)
    assert np.all(y >= -1.0) and np.all(y < 1.0)
    blob = c.encrypt("it", pcm)
    z = ciphertext_as_audio(c, pcm, "it", blob=blob)
    assert z.shape == (n,)
    if name != "aes_gcm":  # chaotic ciphers are deterministic; AES uses a fresh nonce
        assert np.array_equal(y, z)
    if n == 8000:
        assert not np.allclose(z, pcm / 32768.0)
        assert abs(adjacent_correlation(z)) < 0.05 < adjacent_correlation(pcm)


def test_ciphertext_as_audio_aes_body(ciphers):
    """The AES waveform is exactly the GCM ciphertext body (header and tag dropped)."""
    pcm = to_pcm16(vowel(0.5))
    c = ciphers["aes_gcm"]
    blob = c.encrypt("it", pcm)
    y = ciphertext_as_audio(c, pcm, "it", blob=blob)
    body = np.frombuffer(blob[25:-16], dtype="<i2")
    assert body.size == pcm.size and np.array_equal((y * 32768).astype(np.int16), body)


def test_to_pcm16_matches_library():
    from speechret.library.indexer import to_pcm16 as lib_pcm16

    w = np.concatenate([vowel(0.1), np.array([1.0, -1.0, 1.5, -1.5, 0.49999 / 32768], np.float32)])
    assert np.array_equal(to_pcm16(w), lib_pcm16(w))


# ------------------------------------------------------------------------------ evaluate_cipher
@pytest.mark.parametrize("name", ["aes_gcm", "hyperchaotic", "rossler"])
def test_evaluate_cipher(ciphers, fixed_nonce, name):
    waves = [vowel(3.0, seed=0)]
    r = evaluate_cipher(ciphers[name], waves)
    assert r["n_items"] == 1.0 and r["decrypt_bit_exact"] == 1.0
    assert r["pesq_decrypted"] >= 4.4
    if math.isnan(r["pesq_encrypted"]):
        assert r["pesq_encrypted_failed"] == 1.0
    else:
        assert r["pesq_encrypted"] < 2.0
    assert r["corr_original"] > 0.9 and r["corr_encrypted"] < 0.05
    assert r["key_space_log2"] == key_space(name)["log2"]
    assert r["encrypt_x_realtime"] > 0 and all(isinstance(v, float) for v in r.values())


def test_evaluate_cipher_options_and_silence(ciphers):
    c = build_cipher("rossler", {"demo": True})
    waves = [vowel(1.0, seed=1), np.zeros(SR, np.float32)]
    r = evaluate_cipher(c, waves, pesq_rate=8000)
    assert r["n_items"] == 2.0 and r["decrypt_bit_exact"] == 1.0
    # the silent item cannot be scored: counted as failed, mean over the rest, no crash
    assert r["pesq_decrypted_failed"] == 1.0 and r["pesq_decrypted"] >= 4.4
    assert math.isfinite(r["corr_original"])
    r = evaluate_cipher(ciphers["hyperchaotic"], [vowel(1.0)], pesq_mode="wb", pesq_scale="lqo")
    assert r["pesq_decrypted"] > 4.5
    with pytest.raises(ValueError):
        evaluate_cipher(c, waves, sample_rate=22050)  # PESQ needs 8k/16k: set pesq_rate
    assert evaluate_cipher(c, [vowel(0.5)], sample_rate=22050, pesq_rate=16000)["decrypt_bit_exact"] == 1.0
