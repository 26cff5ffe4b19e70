"""Tests of speechret.crypto: chaotic systems, paper A / B ciphers, AES-256-GCM, keys, configs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from speechret.crypto import (
    AesGcmCipher,
    AuthenticationError,
    CipherError,
    HyperchaoticCipher,
    HyperchaoticKey,
    KeyFile,
    RosslerCipher,
    RosslerKey,
    SpeechCipher,
    WrongKeyError,
    build_cipher,
    create_salt_file,
    derive_key,
    generate_key_file,
    hyperchaotic_trajectory,
    key_from_passphrase,
    key_id,
    rossler_trajectory,
)

LENGTHS = [0, 1, 255, 256, 257, 16000]
CONF = Path(__file__).resolve().parents[1] / "conf" / "cipher"


def speech_like(n: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced-speech-like int16 signal: harmonics of a gliding f0 under a syllabic envelope + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000.0
    x = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 8))
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    x = x * env + 0.01 * rng.standard_normal(n)
    return (x / np.abs(x).max() * 20000).astype(np.int16)


def rand_pcm(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(-32768, 32768, n, dtype=np.int64).astype(np.int16)


@pytest.fixture(scope="module")
def aes_key(tmp_path_factory) -> Path:
    return generate_key_file(tmp_path_factory.mktemp("keys") / "lib.key")


@pytest.fixture(scope="module")
def ciphers(aes_key):
    return {
        "aes_gcm": AesGcmCipher(aes_key),
        "hyperchaotic": HyperchaoticCipher(HyperchaoticKey.paper_demo()),
        "rossler": RosslerCipher(RosslerKey.demo()),
    }


# ---------------------------------------------------------------------------------- chaos
def test_trajectories_shape_bounded_reproducible():
    t = hyperchaotic_trajectory((1, 1, 1, 1), 20000)
    assert t.shape == (20000, 4) and t.dtype == np.float64
    assert np.isfinite(t).all() and np.abs(t).max() < 100
    assert np.array_equal(t, hyperchaotic_trajectory((1, 1, 1, 1), 20000))
    # prefix property: n rows are the first n rows of a longer run
    assert np.array_equal(t[:100], hyperchaotic_trajectory((1, 1, 1, 1), 100))
    r = rossler_trajectory((1, 1, 1), 20000)
    assert r.shape == (20000, 3) and np.isfinite(r).all() and np.abs(r).max() < 50
    assert np.array_equal(r, rossler_trajectory((1, 1, 1), 20000))
    # stride / transient convention: row i = state after transient + i*stride steps
    a = hyperchaotic_trajectory((1, 1, 1, 1), 10, transient=0, stride=3)
    b = hyperchaotic_trajectory((1, 1, 1, 1), 28, transient=0, stride=1)
    assert np.array_equal(a, b[::3])
    assert np.array_equal(hyperchaotic_trajectory((1, 1, 1, 1), 1, transient=0)[0], [1, 1, 1, 1])


def test_trajectories_are_chaotic():
    # a 1e-12 perturbation grows to O(1) (positive Lyapunov exponent)
    a = hyperchaotic_trajectory((1, 1, 1, 1), 3000, transient=0, stride=10)
    b = hyperchaotic_trajectory((1 + 1e-12, 1, 1, 1), 3000, transient=0, stride=10)
    assert np.abs(a[0] - b[0]).max() < 1.1e-12 and np.abs(a[-1] - b[-1]).max() > 0.1
    a = rossler_trajectory((1, 1, 1), 5000, transient=0, stride=100)
    b = rossler_trajectory((1 + 1e-12, 1, 1), 5000, transient=0, stride=100)
    assert np.abs(a[-1] - b[-1]).max() > 0.1


def test_trajectory_bad_args():
    with pytest.raises(ValueError):
        hyperchaotic_trajectory((1, 1, 1, 1), 10, h=0)
    with pytest.raises(ValueError):
        rossler_trajectory((1, 1, 1), 10, stride=0)
    with pytest.raises(ValueError, match="diverged"):
        hyperchaotic_trajectory((1, 1, 1, 1), 1000, h=1.0, transient=0)


# ---------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", ["aes_gcm", "hyperchaotic", "rossler"])
@pytest.mark.parametrize("n", LENGTHS)
def test_item_round_trip_bit_exact(ciphers, name, n):
    c = ciphers[name]
    assert isinstance(c, SpeechCipher) and c.name == name
    x = rand_pcm(n, seed=n)
    blob = c.encrypt(f"item-{n}", x)
    assert isinstance(blob, bytes)
    y = c.decrypt(f"item-{n}", blob)
    assert y.dtype == np.int16 and y.shape == (n,)
    assert np.array_equal(x, y)


@pytest.mark.parametrize("n", LENGTHS)
def test_sample_api_round_trip(ciphers, n):
    x = rand_pcm(n, seed=100 + n)
    hc = ciphers["hyperchaotic"]
    e = hc.encrypt(x)
    assert e.dtype == np.int16 and e.size == -(-n // 256) * 256
    assert np.array_equal(hc.decrypt(e, n), x)
    assert np.array_equal(hc.decrypt_bytes(hc.encrypt_bytes(x)), x)
    ro = ciphers["rossler"]
    e = ro.encrypt(x)
    assert e.dtype == np.int16 and e.size == n
    assert np.array_equal(ro.decrypt(e), x) and np.array_equal(ro.decrypt(e, n), x)
    assert np.array_equal(ro.decrypt_bytes(ro.encrypt_bytes(x)), x)


def test_hyperchaotic_steps_match_paper():
    """Re-derive the ciphertext step by step from the paper's equations (5)-(6)."""
    from speechret.crypto.hyperchaotic import to_uint16

    key = HyperchaoticKey(0.3, -0.2, 1.1, 0.7)
    x = rand_pcm(3 * 256, seed=5)
    traj = hyperchaotic_trajectory(key.as_tuple(), 768)
    ix = np.argsort(traj[:3, 0], kind="stable")
    iy = np.argsort(traj[:256, 1], kind="stable")
    z, w = to_uint16(traj[:, 2]), to_uint16(traj[:, 3])
    sz = x.view(np.uint16).reshape(3, 256)[ix][:, iy].reshape(-1)
    s1 = np.zeros(768, np.uint16)
    prev = 0
    for i in range(768):
        prev = s1[i] = prev ^ z[i] ^ sz[i]
    s2 = np.zeros(768, np.uint16)
    nxt = 0
    for i in range(767, -1, -1):
        nxt = s2[i] = nxt ^ w[i] ^ s1[i]
    assert np.array_equal(HyperchaoticCipher(key).encrypt(x).view(np.uint16), s2)


def test_rossler_steps_match_paper():
    from speechret.crypto.rossler import to_bytes

    x = rand_pcm(100, seed=6)
    traj = rossler_trajectory((0.5, 0.1, 0.2), 200)
    ks = to_bytes(traj[:, 0]) ^ to_bytes(traj[:, 1]) ^ to_bytes(traj[:, 2])
    expect = (x.astype("<i2").view(np.uint8) ^ ks).view("<i2")
    assert np.array_equal(RosslerCipher((0.5, 0.1, 0.2)).encrypt(x), expect)


# ---------------------------------------------------------------------------------- AEAD
def test_aead_wrong_key_names_item(ciphers, tmp_path):
    blob = ciphers["aes_gcm"].encrypt("spk01/utt007", speech_like(4000))
    other = AesGcmCipher(generate_key_file(tmp_path / "other.key"))
    with pytest.raises(AuthenticationError, match="spk01/utt007"):
        other.decrypt("spk01/utt007", blob)
    with pytest.raises(WrongKeyError):
        other.decrypt("spk01/utt007", blob)
    # wrong key with a forged key id still fails authentication
    forged = blob[:5] + bytes.fromhex(other.key_id) + blob[13:]
    with pytest.raises(AuthenticationError, match="spk01/utt007") as ei:
        other.decrypt("spk01/utt007", forged)
    assert not isinstance(ei.value, WrongKeyError)


def test_aead_tamper_every_region(ciphers):
    c = ciphers["aes_gcm"]
    blob = c.encrypt("item-x", speech_like(1000))
    for pos in (4, 10, 20, 40, len(blob) // 2, len(blob) - 1):  # version, key id, nonce, body, tag
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(CipherError, match="item-x"):
            c.decrypt("item-x", bytes(bad))
    bad = bytearray(blob)
    bad[len(blob) // 2] ^= 0x80
    with pytest.raises(AuthenticationError, match="item-x"):
        c.decrypt("item-x", bytes(bad))


def test_aead_item_id_is_bound(ciphers):
    c = ciphers["aes_gcm"]
    blob = c.encrypt("item-a", speech_like(1000))
    with pytest.raises(AuthenticationError, match="item-b"):
        c.decrypt("item-b", blob)


def test_aead_truncated_and_malformed(ciphers):
    c = ciphers["aes_gcm"]
    blob = c.encrypt("item-t", speech_like(1000))
    for cut in (0, 3, 10, 24, 40):
        with pytest.raises(CipherError, match="item-t"):
            c.decrypt("item-t", blob[:cut])
    with pytest.raises(AuthenticationError, match="item-t"):
        c.decrypt("item-t", blob[:-1])
    with pytest.raises(CipherError, match="item-t"):
        c.decrypt("item-t", b"XXXX" + blob[4:])


def test_aead_nonce_fresh_and_key_not_in_blob(ciphers, aes_key):
    c = ciphers["aes_gcm"]
    x = speech_like(1000)
    a, b = c.encrypt("i", x), c.encrypt("i", x)
    assert a != b and a[13:25] != b[13:25]
    key = aes_key.read_bytes()
    assert key not in a and key_id(key) == c.key_id and len(c.key_id) == 16
    assert key.hex() not in repr(c)


def test_input_validation(ciphers):
    for c in ciphers.values():
        with pytest.raises(CipherError):
            c.encrypt("i", np.zeros(10, np.float32))
        with pytest.raises(CipherError):
            c.encrypt("i", np.zeros((2, 10), np.int16))


def test_chaotic_blob_malformed(ciphers):
    for name in ("hyperchaotic", "rossler"):
        c = ciphers[name]
        blob = c.encrypt("it", rand_pcm(300))
        with pytest.raises(CipherError, match="it"):
            c.decrypt("it", blob[:5])
        with pytest.raises(CipherError, match="it"):
            c.decrypt("it", blob[:-2])
        with pytest.raises(CipherError, match="it"):
            c.decrypt("it", b"ABCD" + blob[4:])


# ---------------------------------------------------------------------------------- keys
def test_key_file_permissions_and_no_overwrite(tmp_path):
    p = generate_key_file(tmp_path / "sub" / "k.key")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600 and len(p.read_bytes()) == 32
    with pytest.raises(CipherError, match="exists"):
        generate_key_file(p)
    kf = KeyFile(p)
    assert kf.load() == p.read_bytes() and kf.key_id == key_id(p.read_bytes())
    assert KeyFile.generate(tmp_path / "k2").load() != kf.load()
    (tmp_path / "short").write_bytes(b"abc")
    (tmp_path / "short").chmod(0o600)
    with pytest.raises(CipherError):
        AesGcmCipher(tmp_path / "short")


def test_passphrase_kdf(tmp_path):
    salt, salt2 = b"0123456789abcdef", b"fedcba9876543210"
    k1 = derive_key("correct horse", salt)
    assert len(k1) == 32 and k1 == derive_key("correct horse", salt)
    assert derive_key("correct horse", salt2) != k1
    assert derive_key("correct horsf", salt) != k1
    sf = create_salt_file(tmp_path / "salt.json")
    doc = json.loads(sf.read_text())
    assert doc["kdf"] == "scrypt" and doc["n"] == 2**15 and doc["r"] == 8 and doc["p"] == 1
    ka = key_from_passphrase("pw", sf)
    assert ka == key_from_passphrase("pw", sf) == derive_key("pw", bytes.fromhex(doc["salt"]))
    sf2 = create_salt_file(tmp_path / "salt2.json")
    assert key_from_passphrase("pw", sf2) != ka
    # through build_cipher with an env var
    os.environ["SPEECHRET_TEST_PW"] = "pw"
    try:
        c = build_cipher("aes_gcm", {"passphrase_env": "SPEECHRET_TEST_PW", "salt_file": str(sf)})
    finally:
        del os.environ["SPEECHRET_TEST_PW"]
    assert c.key_id == key_id(ka)


# ---------------------------------------------------------------------------------- chaotic security
@pytest.mark.parametrize("name", ["hyperchaotic", "rossler"])
def test_chaotic_wrong_key_gives_noise(name):
    x = speech_like(16000)
    if name == "hyperchaotic":
        good, bad = HyperchaoticCipher((1, 1, 1, 1)), HyperchaoticCipher((1.5, 0.5, 2, -1))
    else:
        good, bad = RosslerCipher((1, 1, 1)), RosslerCipher((0.5, -1, 2))
    blob = good.encrypt("u", x)
    y = bad.decrypt("u", blob)  # no error: the chaotic ciphers are unauthenticated
    assert y.shape == x.shape
    assert abs(np.corrcoef(x.astype(float), y.astype(float))[0, 1]) < 0.05


@pytest.mark.parametrize("name", ["hyperchaotic", "rossler"])
def test_chaotic_key_sensitivity(name):
    x = speech_like(16000)
    if name == "hyperchaotic":
        a, b = HyperchaoticCipher((1, 1, 1, 1)), HyperchaoticCipher((1 + 1e-12, 1, 1, 1))
    else:
        a, b = RosslerCipher((1, 1, 1)), RosslerCipher((1 + 1e-12, 1, 1))
    ea, eb = a.encrypt(x), b.encrypt(x)
    assert np.mean(ea != eb) > 0.99
    assert np.mean(ea.view(np.uint8) != eb.view(np.uint8)) > 0.99
    # decrypting with the nearly-right key is still noise
    assert abs(np.corrcoef(x.astype(float), b.decrypt(ea, x.size).astype(float))[0, 1]) < 0.05


@pytest.mark.parametrize("name", ["hyperchaotic", "rossler"])
def test_chaotic_ciphertext_statistics(ciphers, name):
    x = speech_like(64000)
    assert np.corrcoef(x[:-1].astype(float), x[1:].astype(float))[0, 1] > 0.9  # plaintext is smooth
    e = ciphers[name].encrypt(x).astype(float)
    assert abs(np.corrcoef(e[:-1], e[1:])[0, 1]) < 0.02
    hist = np.histogram(e, bins=64, range=(-32768, 32768))[0]
    expected = e.size / 64
    chi2 = ((hist - expected) ** 2 / expected).sum()
    assert chi2 < 130  # 63 dof: p ~ 1e-6 bound; plaintext speech is far from uniform
    assert abs(e.mean()) < 600 and abs(e.std() - 65536 / np.sqrt(12)) < 600
    assert np.corrcoef(x.astype(float), e[: x.size])[0, 1] < 0.05


# ---------------------------------------------------------------------------------- build / configs
def test_build_cipher_and_configs(aes_key, tmp_path):
    yaml = pytest.importorskip("omegaconf").OmegaConf
    from hydra.utils import instantiate

    hc_key = tmp_path / "hc.json"
    hc_key.write_text(json.dumps({"x0": 0.1, "y0": 0.2, "z0": 0.3, "w0": 0.4}))
    ro_key = tmp_path / "ro.json"
    ro_key.write_text(json.dumps({"x0": 0.1, "y0": 0.2, "z0": 0.3}))
    for k in (hc_key, ro_key):
        k.chmod(0o600)  # key files must be owner-only (tests/test_key_hygiene.py)
    x = rand_pcm(1000)
    for name, key in (("aes_gcm", aes_key), ("hyperchaotic", hc_key), ("rossler", ro_key)):
        cfg = yaml.load(CONF / f"{name}.yaml")
        cfg.key_material.key_file = str(key)
        c = instantiate(cfg)
        assert c.name == name and np.array_equal(c.decrypt("i", c.encrypt("i", x)), x)
    hc = build_cipher("hyperchaotic", {"key_file": str(hc_key)})
    assert hc.key == HyperchaoticKey(0.1, 0.2, 0.3, 0.4)
    assert build_cipher("rossler", {"demo": True}).key == RosslerKey.demo()
    os.environ["SPEECHRET_TEST_HC"] = "1,1,1,1"
    try:
        assert build_cipher("hyperchaotic", {"key_env": "SPEECHRET_TEST_HC"}).key == HyperchaoticKey.paper_demo()
    finally:
        del os.environ["SPEECHRET_TEST_HC"]
    with pytest.raises(ValueError, match="unknown cipher"):
        build_cipher("des", b"x" * 32)
    with pytest.raises(CipherError):
        build_cipher("hyperchaotic", (1, 2, 3))
    for f in CONF.glob("*.yaml"):  # no inline secrets
        assert "key_hex" not in f.read_text() and "passphrase:" not in f.read_text()


def test_cipher_configs_target_their_class_and_bad_configs_raise_config_error(tmp_path):
    from omegaconf import OmegaConf

    from speechret.errors import ConfigError

    classes = {"aes_gcm": AesGcmCipher, "hyperchaotic": HyperchaoticCipher, "rossler": RosslerCipher}
    for name, cls in classes.items():
        cfg = OmegaConf.load(CONF / f"{name}.yaml")
        assert cfg._target_ == f"speechret.crypto.{cls.__name__}.from_key_material" and cfg.name == name
    assert HyperchaoticCipher.from_key_material({"demo": True}).key == HyperchaoticKey.paper_demo()
    with pytest.raises(ConfigError, match="cipher.name"):
        RosslerCipher.from_key_material({"demo": True}, name="hyperchaotic")
    with pytest.raises(ConfigError, match="cipher.key_material"):
        RosslerCipher.from_key_material(None)
    with pytest.raises(ConfigError, match="transient"):
        build_cipher("aes_gcm", bytes(32), transient=5)
    with pytest.raises(ConfigError, match="unknown cipher"):
        build_cipher("des", bytes(32))
    with pytest.raises(CipherError, match="no demo key"):
        build_cipher("aes_gcm", {"demo": True})
