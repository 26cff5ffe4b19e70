"""Key hygiene (issue 14, item 6): raw key material is refused on the command line and in configs
-- naming the parameter, never showing the value, before Hydra writes anything -- key files must
be 0600, passphrases come from the environment or a prompt, and ``create_key`` never overwrites a
key nor writes one for a library that already holds data.

The command-line cases run ``index.py`` / ``search.py`` as subprocesses in a temporary directory
and grep *every* file written there, plus the captured stdout / stderr, for the secret."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from speechret.crypto import AesGcmCipher, CipherError, KeyFileModeError, WrongKeyError, build_cipher, key_id
from speechret.crypto.aead import derive_key, generate_key_file, read_salt_file
from speechret.crypto.keys import KeyCreationRefused, build_cipher_from_cfg, refuse_secret_overrides
from speechret.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
KEY_HEX = "9e" * 32                       # a valid AES-256 key, as 64 hex digits
PASSPHRASE = "Tr0ub4dor-and-3-horses-SECRET"
CHAOTIC = "0.7312894561"                  # a chaotic initial value


def _run(script: str, args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SPEECHRET_", "HYDRA_"))}
    e.update({"OMP_NUM_THREADS": "1", **(env or {})})
    lib = [f"library={cwd / 'lib'}"] if script in ("index.py", "search.py") else []
    return subprocess.run([sys.executable, str(REPO / script), *args, f"paths.log_dir={cwd / 'logs'}", *lib],
                          cwd=cwd, env=e, capture_output=True, text=True, timeout=300)


def _leaks(root: Path, secret: str) -> list[str]:
    """Every file under ``root`` whose bytes contain ``secret``."""
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def _cfg(name: str, overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose(name, overrides=overrides)


# ------------------------------------------------------------------------- command line, end to end
CLI_CASES = [
    ("index.py", ["+cipher.key_material.key_hex=" + KEY_HEX], KEY_HEX, "cipher.key_material.key_hex"),
    ("index.py", ["cipher.key_material.key_hex=" + KEY_HEX], KEY_HEX, "cipher.key_material.key_hex"),
    ("index.py", ["++cipher.key_material.passphrase=" + PASSPHRASE], PASSPHRASE, "cipher.key_material.passphrase"),
    ("index.py", ["+cipher.key_material.key=" + KEY_HEX], KEY_HEX, "cipher.key_material.key"),
    ("index.py", ["cipher.key_material={key_hex: " + KEY_HEX + "}"], KEY_HEX, "cipher.key_material.key_hex"),
    ("index.py", ["cipher.key_material.key_env=" + KEY_HEX], KEY_HEX, "cipher.key_material.key_env"),
    ("index.py", ["+hydra.job.env_set.SPEECHRET_PASSPHRASE=" + PASSPHRASE], PASSPHRASE,
     "hydra.job.env_set.SPEECHRET_PASSPHRASE"),
    ("index.py", ["cipher=rossler", "+cipher.key_material.x0=" + CHAOTIC], CHAOTIC, "cipher.key_material.x0"),
    ("search.py", ["queries=q.wav", "+cipher.key_material.key_hex=" + KEY_HEX], KEY_HEX, "cipher.key_material.key_hex"),
    ("search.py", ["queries=q.wav", "+cipher.key_material.passphrase=" + PASSPHRASE], PASSPHRASE,
     "cipher.key_material.passphrase"),
    # apps without the argv guard: the SecretGuard callback checks their overrides before Hydra writes
    ("evaluate.py", ["+protocol.ciphers.rossler.key_material.x0=" + CHAOTIC], CHAOTIC,
     "protocol.ciphers.rossler.key_material.x0"),
    ("train.py", ["+cipher.key_material.passphrase=" + PASSPHRASE], PASSPHRASE, "cipher.key_material.passphrase"),
]


#: end to end (a subprocess per case): each script once, through each guard (the argv guard of
#: index.py / search.py, the SecretGuard callback of evaluate.py / train.py); every spelling of the
#: override is checked in-process against the same function the argv guard calls
END_TO_END = [CLI_CASES[0], CLI_CASES[9], CLI_CASES[10], CLI_CASES[11]]


ARGV_GUARDED = [c for c in CLI_CASES if c[0] in ("index.py", "search.py")]


@pytest.mark.parametrize("script,args,secret,param", ARGV_GUARDED, ids=[f"{c[0]}:{c[3]}" for c in ARGV_GUARDED])
def test_every_spelling_of_a_raw_key_override_is_refused_unseen(script, args, secret, param):
    with pytest.raises(ConfigError) as err:
        refuse_secret_overrides(["ckpt_path=missing.ckpt", *args])
    assert param in str(err.value) and "not shown" in str(err.value) and secret not in str(err.value)


@pytest.mark.parametrize("script,args,secret,param", END_TO_END, ids=[f"{c[0]}:{c[3]}" for c in END_TO_END])
def test_raw_key_on_the_command_line_is_refused_unseen(tmp_path, script, args, secret, param):
    res = _run(script, ["ckpt_path=missing.ckpt", *args] if script != "train.py" else args, tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert param in res.stderr and "not shown" in res.stderr  # names the parameter ...
    assert secret not in out  # ... never the value
    assert _leaks(tmp_path, secret) == []
    assert not list(tmp_path.rglob(".hydra")) and not (tmp_path / "lib").exists()  # refused before Hydra wrote


def test_raw_key_in_a_config_file_is_refused_before_hydra_writes(tmp_path):
    conf = tmp_path / "myconf" / "cipher"
    conf.mkdir(parents=True)
    (conf / "leaky.yaml").write_text("_target_: speechret.crypto.AesGcmCipher.from_key_material\n_convert_: all\n"
                                     f"name: aes_gcm\nkey_material:\n  key_hex: {KEY_HEX}\n")
    res = _run("index.py", ["ckpt_path=missing.ckpt", "cipher=leaky", f"hydra.searchpath=[file://{tmp_path / 'myconf'}]"],
               tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "cipher.key_material.key_hex" in res.stderr and KEY_HEX not in out
    assert _leaks(tmp_path, KEY_HEX) == [str(conf / "leaky.yaml")]  # only the user's own file
    assert not list(tmp_path.rglob(".hydra"))


def test_passphrase_from_the_environment_never_reaches_hydra_outputs(tmp_path):
    """A real run with the passphrase in $SPEECHRET_PASSPHRASE: the salt is created, the job then
    fails on the missing checkpoint -- and neither the Hydra files nor the output hold the value."""
    res = _run("index.py", ["ckpt_path=missing.ckpt", "cipher.key_material.key_file=null",
                            "cipher.key_material.passphrase_env=SPEECHRET_PASSPHRASE",
                            f"cipher.key_material.salt_file={tmp_path / 'lib.salt.json'}",
                            "cipher.key_material.create_salt=true"], tmp_path, env={"SPEECHRET_PASSPHRASE": PASSPHRASE})
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "missing.ckpt" in out, out
    assert (tmp_path / "lib.salt.json").is_file()  # the cipher was built from the passphrase
    hydra_files = [p for p in tmp_path.rglob("*.yaml") if ".hydra" in p.parts]
    assert hydra_files and "SPEECHRET_PASSPHRASE" in "".join(p.read_text() for p in hydra_files)  # the name only
    assert PASSPHRASE not in out and _leaks(tmp_path, PASSPHRASE) == []


def test_argv_guard_passes_ordinary_overrides():
    refuse_secret_overrides(["ckpt_path=a.ckpt", "cipher.key_material.key_file=/k/lib.key", "create_key=true",
                             "cipher.key_material.passphrase_env=MY_PW", "+cipher.key_material.passphrase_prompt=true",
                             "cipher.key_material.salt_file=lib/salt.json", "-m", "k=3",
                             "cipher.key_material.key_env=null"])
    for bad in ("+cipher.key_material.password=x", "~cipher.key_material.secret=x", "+cipher.key_material.token=x",
                "cipher.key_material.passphrase_env=not a name", "cipher.key_material.key_file=" + KEY_HEX):
        with pytest.raises(ConfigError, match="cipher.key_material"):
            refuse_secret_overrides([bad])


# ------------------------------------------------------------------------- the API refuses them too
@pytest.mark.parametrize("name,material,field", [
    ("aes_gcm", {"key_hex": KEY_HEX}, "key_hex"),
    ("aes_gcm", {"passphrase": PASSPHRASE, "salt_file": "s.json"}, "passphrase"),
    ("aes_gcm", {"key_file": None, "key": KEY_HEX}, "key"),
    ("rossler", {"x0": float(CHAOTIC), "y0": 1.0, "z0": 1.0}, "x0"),
    ("hyperchaotic", {"key": [float(CHAOTIC), 1, 1, 1]}, "key"),
])
def test_inline_key_material_in_a_mapping_is_a_config_error(name, material, field):
    with pytest.raises(ConfigError, match=f"cipher.key_material.{field}") as err:
        build_cipher(name, material)
    for v in material.values():
        assert v is None or str(v) not in str(err.value)
    if name == "aes_gcm":
        with pytest.raises(ConfigError, match=f"cipher.key_material.{field}"):
            AesGcmCipher(material)


def test_env_var_names_are_checked_and_values_never_shown(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="key_env") as err:
        build_cipher("aes_gcm", {"key_env": KEY_HEX})
    assert KEY_HEX not in str(err.value)
    monkeypatch.setenv("MY_AES_KEY", "not-hex-" + KEY_HEX[:10])
    with pytest.raises(CipherError, match="MY_AES_KEY") as err:
        build_cipher("aes_gcm", {"key_env": "MY_AES_KEY"})
    assert KEY_HEX[:10] not in str(err.value)
    monkeypatch.setenv("MY_AES_KEY", KEY_HEX)
    assert build_cipher("aes_gcm", {"key_env": "MY_AES_KEY"}).key_id == key_id(bytes.fromhex(KEY_HEX))
    monkeypatch.setenv("MY_RO_KEY", "0.1,zz," + CHAOTIC)
    with pytest.raises(CipherError, match="MY_RO_KEY") as err:
        build_cipher("rossler", {"key_env": "MY_RO_KEY"})
    assert CHAOTIC not in str(err.value)


# ------------------------------------------------------------------------- key files are 0600
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused_with_the_chmod(tmp_path, mode):
    key = generate_key_file(tmp_path / "lib.key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.chmod(mode)
    with pytest.raises(KeyFileModeError, match=f"mode {mode:04o}") as err:
        build_cipher("aes_gcm", {"key_file": str(key)})
    assert f"chmod 600 {key}" in str(err.value)
    key.chmod(0o600)
    assert build_cipher("aes_gcm", {"key_file": str(key)}).name == "aes_gcm"
    key.chmod(0o400)
    assert build_cipher("aes_gcm", str(key)).name == "aes_gcm"


def test_chaotic_key_file_must_be_0600(tmp_path):
    key = tmp_path / "ro.json"
    key.write_text('{"x0": 0.1, "y0": 0.2, "z0": 0.3}')
    key.chmod(0o644)
    with pytest.raises(KeyFileModeError, match=f"chmod 600 {key}"):
        build_cipher("rossler", {"key_file": str(key)})
    key.chmod(0o600)
    assert build_cipher("rossler", {"key_file": str(key)}).name == "rossler"


# ------------------------------------------------------------------------- passphrases
def test_passphrase_from_a_configurable_environment_variable(tmp_path, monkeypatch):
    salt = tmp_path / "lib.salt.json"
    km = {"passphrase_env": "MY_LIBRARY_PW", "salt_file": str(salt), "create_salt": True}
    with pytest.raises(CipherError, match="MY_LIBRARY_PW"):
        build_cipher("aes_gcm", km)
    monkeypatch.setenv("MY_LIBRARY_PW", PASSPHRASE)
    c = build_cipher("aes_gcm", km)
    s = read_salt_file(salt)
    assert c.key_id == key_id(derive_key(PASSPHRASE, s["salt"], n=s["n"], r=s["r"], p=s["p"]))
    assert build_cipher("aes_gcm", km).key_id == c.key_id  # the salt is reused, not rewritten
    cfg = _cfg("index", ["ckpt_path=x", "cipher.key_material.key_file=null",
                         "cipher.key_material.passphrase_env=MY_LIBRARY_PW", f"cipher.key_material.salt_file={salt}"])
    assert build_cipher_from_cfg(cfg.cipher).key_id == c.key_id


def test_passphrase_from_an_interactive_prompt(tmp_path, monkeypatch):
    import getpass

    salt = tmp_path / "lib.salt.json"
    km = {"passphrase_prompt": True, "salt_file": str(salt), "create_salt": True}
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    with pytest.raises(ConfigError, match="passphrase_prompt: no terminal"):
        build_cipher("aes_gcm", km)
    assert not salt.exists()
    monkeypatch.setattr(sys, "stdin", type("Tty", (), {"isatty": staticmethod(lambda: True)})())
    answers = iter([PASSPHRASE, PASSPHRASE + "x"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    with pytest.raises(ConfigError, match="differ"):  # a new key: asked twice
        build_cipher("aes_gcm", km)
    asked = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": asked.append(prompt) or PASSPHRASE)
    c1 = build_cipher("aes_gcm", km)
    assert len(asked) == 2 and salt.exists()
    c2 = build_cipher("aes_gcm", km)  # the salt exists: asked once
    assert len(asked) == 3 and c2.key_id == c1.key_id


# ------------------------------------------------------------------------- create_key
def _index_cfg(tmp_path, key: Path, *extra: str):
    return _cfg("index", ["ckpt_path=x", f"library={tmp_path / 'lib'}", f"cipher.key_material.key_file={key}", *extra])


def test_create_key_makes_a_0600_key_for_a_new_library_and_never_overwrites(tmp_path):
    key = tmp_path / "keys" / "lib.key"
    cfg = _index_cfg(tmp_path, key, "create_key=true")
    c = build_cipher_from_cfg(cfg.cipher, create_key=True, library=cfg.library)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and c.key_id == key_id(key.read_bytes())
    before = key.read_bytes()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "library.db").write_bytes(b"data")  # the library now holds data; its key exists
    assert build_cipher_from_cfg(cfg.cipher, create_key=True, library=cfg.library).key_id == c.key_id
    assert key.read_bytes() == before


def test_create_key_for_a_library_that_holds_data_writes_nothing(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "manifest.json").write_text("{}")
    key = tmp_path / "new.key"
    cfg = _index_cfg(tmp_path, key)
    with pytest.raises(KeyCreationRefused, match="already holds data") as err:
        build_cipher_from_cfg(cfg.cipher, create_key=True, library=lib)
    assert isinstance(err.value, ConfigError) and isinstance(err.value, WrongKeyError)
    assert not key.exists() and sorted(p.name for p in lib.iterdir()) == ["manifest.json"]
    salt = tmp_path / "new.salt.json"
    cfg = _index_cfg(tmp_path, key, "cipher.key_material.key_file=null", "cipher.key_material.passphrase_env=X",
                     f"cipher.key_material.salt_file={salt}", "cipher.key_material.create_salt=true")
    with pytest.raises(KeyCreationRefused, match="salt file"):
        build_cipher_from_cfg(cfg.cipher, library=lib)
    assert not salt.exists()
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty directory is a new library
    build_cipher_from_cfg(_index_cfg(tmp_path, key).cipher, create_key=True, library=empty)
    assert key.exists()
