"""Bad input (issue 14, item 7): one policy for index and search (:class:`speechret.audio.AudioPolicy`).

Too short, digital silence, non-finite and out-of-range float samples are errors naming the
file; clipping and over-length audio get a warning naming it (over length: ``first`` /
``windows`` / ``refuse``). At index time a bad file is reported and skipped and the library is
unchanged (same item count, fsck ok); ``data=folder`` does the same as a manifest; ``search.py``
reports each bad query and still answers the good ones; ``k`` / ``threshold`` / ``mode`` /
``format`` / ... are validated with messages naming the parameter.

The hasher is a paper-A CNN over 4 s Log-Mel features with *random* weights saved as a checkpoint
(no training: the input checks need a deterministic model with a fixed window, not a good one).
"""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir

from speechret.audio import AudioError, AudioPolicy, check_waveform, split_windows
from speechret.errors import ConfigError, SpeechretError

REPO = Path(__file__).resolve().parents[1]
SR = 16000
WINDOW = 4 * SR  # the CNN's fixed Log-Mel input (conf/features/logmel.yaml: fixed_seconds 4.0)


def speech(seconds: float, seed: int) -> np.ndarray:
    """A voiced-speech-like float wave in [-0.5, 0.5]: harmonics of a gliding f0 under an envelope."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    f0 = rng.uniform(90, 250) + 30 * np.sin(2 * np.pi * rng.uniform(0.3, 2) * t)
    ph = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(rng.uniform(0.1, 1) / k * np.sin(k * ph) for k in range(1, 8))
    x = x * (0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(2, 6) * t)) + 0.05 * rng.standard_normal(n)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def write(path: Path, wave, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wave), SR, subtype=subtype, format="WAV")
    return path


def compose_cfg(name: str, overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose(name, overrides=overrides)


def manifest(path: Path, files: list[Path]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "id", "speaker", "label"])
        for i, p in enumerate(files):
            w.writerow([str(p), p.stem, f"s{i % 2}", i % 3])
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    import torch

    from speechret.hashing.hasher import Hasher

    cfg = compose_cfg("train", ["experiment=cnn", "model.num_classes=4", "model.hash_bits=48",
                                "model.net.channels=[4,8]", f"paths.output_dir={tmp_path_factory.mktemp('run')}"])
    torch.manual_seed(0)
    h = Hasher.from_config(cfg)
    assert h.features.fixed_samples == WINDOW
    path = tmp_path_factory.mktemp("ckpt") / "random_cnn.ckpt"
    torch.save({"speechret": h.config, "state_dict": h.module.state_dict()}, path)
    return str(path)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("good")
    files = [write(d / f"good{i}.wav", speech(1.0 + 0.4 * i, i)) for i in range(5)]
    return files + [write(d / "exact4s.wav", speech(4.0, 99))]  # exactly one model window


@pytest.fixture(scope="module")
def library(ckpt, good, tmp_path_factory) -> dict:
    """A library of the good files, indexed once for the module."""
    from speechret.apps.index import run_index

    d = tmp_path_factory.mktemp("lib")
    common = [f"ckpt_path={ckpt}", f"library={d / 'lib'}", "data=manifest", f"cipher.key_material.key_file={d / 'lib.key'}",
              "progress=false", "batch_size=4"]
    report = run_index(compose_cfg("index", [*common, f"data.root={manifest(d / 'good.csv', good)}",
                                             "create_key=true"]))
    assert report.added == len(good) and not report.failed
    return {"dir": d / "lib", "common": common, "tmp": d}


def state(lib_dir: Path) -> tuple[int, bool]:
    """(item count, fsck ok) of a library: what a bad input must leave unchanged."""
    from speechret.library.store import SpeechLibrary

    with SpeechLibrary.open(lib_dir) as lib:
        return len(lib), bool(lib.fsck()["ok"])


# ------------------------------------------------------------------------------ the policy itself
ERRORS = [  # (name, wave, policy, what the message says)
    ("clip_0.05s.wav", speech(0.05, 1), {}, "too short: 0.050 s"),
    ("one_sample.wav", speech(1.0, 1)[:1], {}, "too short"),
    ("below_min.wav", speech(0.5, 1), {"min_seconds": 1.0}, "min_seconds=1"),
    ("zeros.wav", np.zeros(SR, np.float32), {}, "digital silence"),
    ("lsb_dither.wav", np.random.default_rng(0).integers(-1, 2, SR).astype(np.float32) / 32768, {}, "digital silence"),
    ("nan.wav", np.r_[speech(1.0, 1), np.float32(np.nan)], {}, "non-finite"),
    ("inf.wav", np.r_[np.float32(-np.inf), speech(1.0, 1)], {}, "non-finite"),
    ("loud_float.wav", speech(1.0, 1) * 2e6, {}, "beyond +-1"),
    ("long.wav", speech(10.0, 1), {"over_length": "refuse"}, "too long: 10.0 s"),
    ("empty.wav", np.zeros(0, np.float32), {}, "empty"),
    ("stereo.wav", np.zeros((SR, 2), np.float32), {}, "mono"),
]


@pytest.mark.parametrize("name,wave,policy,what", ERRORS, ids=[e[0] for e in ERRORS])
def test_policy_errors_name_the_file(name, wave, policy, what):
    with pytest.raises(AudioError, match="^" + name.replace(".", r"\.")) as err:
        check_waveform(wave, SR, name, AudioPolicy(**policy), window=WINDOW)
    assert what in str(err.value)


def test_policy_warnings_name_the_file(caplog):
    caplog.set_level(logging.WARNING, logger="speechret.audio")
    clipped = np.clip(speech(1.0, 2) * 20, -1, 1)
    out = check_waveform(clipped, SR, "clipped.wav", window=WINDOW)
    assert np.array_equal(out.wave, clipped) and "clipped.wav: clipping" in out.warnings[0]
    out = check_waveform(speech(10.0, 3), SR, "long.wav", window=WINDOW)
    assert out.windows is None and "long.wav: 10.0 s is longer than the model's 4 s window" in out.warnings[0]
    out = check_waveform(speech(10.0, 3), SR, "long.wav", AudioPolicy(over_length="windows"), window=WINDOW)
    assert out.windows == [(0, WINDOW), (WINDOW // 2, WINDOW * 3 // 2), (WINDOW, 2 * WINDOW),
                           (10 * SR - WINDOW, 10 * SR)] and "4 overlapping windows" in out.warnings[0]
    loud = speech(1.0, 4) * 1e6
    out = check_waveform(loud, SR, "loud.wav", AudioPolicy(over_range="normalize"), window=WINDOW)
    assert np.abs(out.wave).max() == pytest.approx(1.0) and "loud.wav" in out.warnings[0]
    np.testing.assert_allclose(out.wave, loud / np.abs(loud).max(), rtol=1e-6)  # scaled, never clipped
    ringing = speech(1.0, 5) * 2.04  # full-scale PCM resampled: a peak of 1.02, within audio_policy.overshoot
    out = check_waveform(ringing, SR, "resampled.wav", window=WINDOW)  # over_range=refuse, yet normalised
    assert np.abs(out.wave).max() == pytest.approx(1.0) and "resampled.wav: samples beyond +-1" in out.warnings[-1]
    with pytest.raises(AudioError, match="resampled.wav: float samples beyond"):
        check_waveform(ringing, SR, "resampled.wav", AudioPolicy(overshoot=0.0))
    assert {r.getMessage().split(":")[0] for r in caplog.records} == {"clipped.wav", "long.wav", "loud.wav",
                                                                      "resampled.wav"}
    # a variable-length model has no window: long audio is fine; clean audio gets no warning
    assert check_waveform(speech(30.0, 5), SR, "long.wav", window=None).warnings == []
    assert check_waveform(speech(1.0, 6), SR, "fine.wav", window=WINDOW).warnings == []


def test_split_windows_cover_the_wave():
    assert split_windows(100, 200, 100) == [(0, 100)]
    assert split_windows(250, 100, 50) == [(0, 100), (50, 150), (100, 200), (150, 250)]
    assert split_windows(230, 100, 100) == [(0, 100), (100, 200), (130, 230)]


@pytest.mark.parametrize("node,key", [
    ({"min_seconds": -1}, "audio_policy.min_seconds"), ({"silence_peak": "tiny"}, "audio_policy.silence_peak"),
    ({"clip_fraction": 2}, "audio_policy.clip_fraction"), ({"over_range": "clip"}, "audio_policy.over_range"),
    ({"over_length": "all"}, "audio_policy.over_length"), ({"window_hop": 0}, "audio_policy.window_hop"),
    ({"min_second": 1}, "unknown key(s) ['min_second']"),
])
def test_policy_config_errors_name_the_key(node, key):
    with pytest.raises(ConfigError) as err:
        AudioPolicy.from_cfg(node)
    assert key in str(err.value)


def test_index_refuses_the_windows_policy():
    with pytest.raises(ConfigError, match="audio_policy.over_length: windows is supported by search only"):
        AudioPolicy.from_cfg({"over_length": "windows"}, windows=False)
    assert AudioPolicy.from_cfg(compose_cfg("index", ["ckpt_path=x"]).audio_policy, windows=False) == AudioPolicy()
    assert AudioPolicy.from_cfg(compose_cfg("search", ["queries=x"]).audio_policy) == AudioPolicy()


# ------------------------------------------------------------------------------ index time
def bad_files(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    out = {
        "short": write(d / "short.wav", speech(0.05, 7)),
        "one_sample": write(d / "one_sample.wav", speech(1.0, 7)[:1]),
        "zeros": write(d / "zeros.wav", np.zeros(SR, np.float32)),
        "dither": write(d / "dither.wav", np.random.default_rng(1).integers(-1, 2, SR).astype(np.float32) / 32768),
        "loud": write(d / "loud.wav", speech(1.0, 8) * 1e6, "FLOAT"),
        "nan": write(d / "nan.wav", np.r_[speech(1.0, 9), np.float32(np.nan)], "FLOAT"),
        "long": write(d / "long.wav", speech(20.0, 10)),
    }
    (d / "garbage.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot-audio-at-all")
    (d / "empty.wav").write_bytes(b"")
    out.update(garbage=d / "garbage.wav", empty=d / "empty.wav")
    return out


def test_index_reports_each_bad_file_and_leaves_the_library_unchanged(library, tmp_path, caplog):
    from speechret.apps.index import run_index

    before = state(library["dir"])
    assert before[1]
    bad = bad_files(tmp_path / "bad")
    refuse_long = ["audio_policy.over_length=refuse"]
    report = run_index(compose_cfg("index", [*library["common"], *refuse_long,
                                             f"data.root={manifest(tmp_path / 'bad.csv', list(bad.values()))}"]))
    failed = {Path(p).name: why for p, why in report.failed}
    assert report.added == 0 and set(failed) == {p.name for p in bad.values()}
    assert all(why.startswith(str(bad[Path(name).stem])) for name, why in failed.items())  # names the file
    assert "too short" in failed["short.wav"] and "too short" in failed["one_sample.wav"]
    assert "digital silence" in failed["zeros.wav"] and "digital silence" in failed["dither.wav"]
    assert "beyond +-1" in failed["loud.wav"] and "non-finite" in failed["nan.wav"]
    assert "too long" in failed["long.wav"]
    assert state(library["dir"]) == before  # nothing added, fsck still ok

    # a mixed batch: the good files are added, the bad ones still skipped
    caplog.set_level(logging.WARNING, logger="speechret.audio")
    clipped = write(tmp_path / "clipped.wav", np.clip(speech(1.5, 11) * 20, -1, 1))
    fine = write(tmp_path / "fine.wav", speech(1.2, 12))
    mixed = [bad["short"], clipped, bad["garbage"], fine, bad["long"]]
    report = run_index(compose_cfg("index", [*library["common"],
                                             f"data.root={manifest(tmp_path / 'mixed.csv', mixed)}"]))
    assert report.added == 3 and {Path(p).name for p, _ in report.failed} == {"short.wav", "garbage.wav"}
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert f"{clipped}: clipping" in warned and f"{bad['long']}: 20.0 s is longer than the model's 4 s window" in warned
    assert state(library["dir"]) == (before[0] + 3, True)


def test_index_normalises_out_of_range_floats_never_clips(ckpt, tmp_path):
    from speechret.apps.index import run_index
    from speechret.crypto import build_cipher
    from speechret.library.store import SpeechLibrary

    loud = write(tmp_path / "loud.wav", speech(1.0, 13) * 1e6, "FLOAT")
    lib_dir, key = tmp_path / "lib", tmp_path / "lib.key"
    report = run_index(compose_cfg("index", [f"ckpt_path={ckpt}", f"library={lib_dir}", "data=manifest",
                                             f"data.root={manifest(tmp_path / 'm.csv', [loud])}", "create_key=true",
                                             f"cipher.key_material.key_file={key}", "progress=false",
                                             "audio_policy.over_range=normalize"]))
    assert report.added == 1 and not report.failed
    with SpeechLibrary.open(lib_dir, build_cipher("aes_gcm", key)) as lib:
        pcm = lib.decrypt(next(iter(lib.items()))["item_id"])
    assert np.mean(np.abs(pcm.astype(np.int32)) >= 32767) < 0.001  # not 51 % clipped
    assert np.abs(pcm).max() >= 32000  # scaled to full range


def test_folder_route_skips_and_reports_bad_files_like_the_manifest_route(ckpt, tmp_path):
    from speechret.apps.index import run_index

    d = tmp_path / "folder"
    for i in range(3):
        write(d / f"{i}_spk{i}_1.wav", speech(1.0 + 0.2 * i, 20 + i))
    (d / "1_spk9_1.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEgarbage")  # unreadable header
    write(d / "2_spk9_2.wav", speech(0.05, 30))  # too short
    write(d / "0_spk9_3.wav", np.zeros(SR, np.float32))  # silence
    with pytest.warns(UserWarning, match="1_spk9_1.wav"):
        report = run_index(compose_cfg("index", [f"ckpt_path={ckpt}", f"library={tmp_path / 'lib'}", "data=folder",
                                                 f"data.root={d}", f"cipher.key_material.key_file={tmp_path / 'k'}",
                                                 "create_key=true", "progress=false"]))
    assert report.added == 3
    assert {Path(p).name for p, _ in report.failed} == {"1_spk9_1.wav", "2_spk9_2.wav", "0_spk9_3.wav"}
    assert all(Path(p).name in why for p, why in report.failed)
    assert state(tmp_path / "lib") == (3, True)


# ------------------------------------------------------------------------------ search time
def search(library, ckpt, *overrides: str):
    from speechret.apps.search import run_search

    return run_search(compose_cfg("search", [f"library={library['dir']}", f"ckpt_path={ckpt}", "format=json",
                                             *overrides]))


def test_search_reports_bad_queries_and_answers_the_good_ones(library, ckpt, good, tmp_path, capsys):
    q = tmp_path / "queries"
    write(q / "a_good.wav", sf.read(str(good[1]), dtype="float32")[0])
    write(q / "b_short.wav", speech(0.1, 40))
    write(q / "c_silent.wav", np.zeros(SR, np.float32))
    (q / "d_garbage.wav").write_bytes(b"not audio")
    write(q / "e_nan.wav", np.r_[speech(1.0, 41), np.float32(np.nan)], "FLOAT")
    capsys.readouterr()
    rows = search(library, ckpt, f"queries={q}", "k=3")
    err = capsys.readouterr().err
    assert {r["query"] for r in rows} == {str(q / "a_good.wav")} and [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["ber"] == 0.0
    for name, what in (("b_short", "too short"), ("c_silent", "digital silence"), ("d_garbage", "unreadable"),
                       ("e_nan", "non-finite")):
        assert f"bad query skipped: {q / name}.wav: " in err and what in err
    before = state(library["dir"])
    with pytest.raises(SpeechretError, match="none of the 2 query file"):
        search(library, ckpt, f"queries=[{q / 'b_short.wav'},{q / 'missing.wav'}]")
    assert "missing.wav: file not found" in capsys.readouterr().err
    assert state(library["dir"]) == before


@pytest.mark.parametrize("override,param", [
    ("k=abc", "k: must be a positive integer"), ("k=-1", "k: must be a positive integer"),
    ("k=0", "k: must be a positive integer"), ("k=2.5", "k: must be a positive integer"),
    ("k=true", "k: must be a positive integer"), ("threshold=-0.1", "threshold: must be a number in [0, 1]"),
    ("threshold=1.5", "threshold: "), ("threshold=abc", "threshold: "), ("gamma=-1", "gamma: "),
    ("format=xml", "format: must be one of table, json, not 'xml'"),
    ("mode=bogus", "mode: unknown search mode 'bogus'"),
    ("mode=two_stage", "mode: two_stage is not a search mode of a paper_a library"),
    ("stage2=both", "stage2: "), ("direction=sideways", "direction: "),
    ("audio_policy.over_length=sometimes", "audio_policy.over_length"),
])
def test_search_parameters_are_validated_naming_the_parameter(library, ckpt, good, override, param):
    with pytest.raises(ConfigError) as err:
        search(library, ckpt, f"queries={good[0]}", override)
    assert param in str(err.value)


def test_k_zero_means_all_only_for_the_grouped_modes():
    from speechret.library.query import check_search_args

    assert check_search_args("full_speech", 0) == 0 and check_search_args("keyword", 0) == 0
    with pytest.raises(ConfigError, match="k: must be a positive integer"):
        check_search_args("threshold", 0)
    with pytest.raises(ConfigError, match="k: must be a non-negative integer"):
        check_search_args("keyword", -1)


def test_search_empty_query_folder_is_a_clear_error(library, ckpt, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(ConfigError, match=f"queries: no audio files in {tmp_path / 'empty'}"):
        search(library, ckpt, f"queries={tmp_path / 'empty'}")


def test_search_over_length_first_windows_refuse(library, ckpt, good, tmp_path, caplog, capsys):
    """A 12 s query holding the library's 4 s item in its middle: ``windows`` finds it exactly (the
    window at 4 s is the item), ``first`` codes only the first 4 s and warns, ``refuse`` reports it."""
    item = sf.read(str(good[-1]), dtype="float32")[0]
    assert len(item) == WINDOW
    query = write(tmp_path / "long_query.wav", np.concatenate([speech(4.0, 50), item, speech(4.0, 51)]))
    caplog.set_level(logging.WARNING, logger="speechret.audio")
    rows = search(library, ckpt, f"queries={query}", "k=3", "audio_policy.over_length=windows")
    assert rows[0]["ber"] == 0.0 and len(rows) == 3
    assert len({r["item_id"] for r in rows}) == 3  # one row per item: its best window
    assert f"{query}: 12.0 s is longer than the model's 4 s window: coded as 5 overlapping windows" in caplog.text
    exact = search(library, ckpt, f"queries={good[-1]}", "k=1")
    assert rows[0]["item_id"] == exact[0]["item_id"]  # the best window is the item itself
    first = search(library, ckpt, f"queries={query}", "k=3")
    assert "only the model's window is coded" in caplog.text and first[0]["ber"] > 0.0
    capsys.readouterr()
    with pytest.raises(SpeechretError, match="none of the 1 query file"):
        search(library, ckpt, f"queries={query}", "audio_policy.over_length=refuse")
    assert f"{query}: too long: 12.0 s" in capsys.readouterr().err


def test_search_py_bad_k_is_a_clean_error_not_a_traceback(library, ckpt, good, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYDRA_")}
    res = subprocess.run([sys.executable, str(REPO / "search.py"), f"library={library['dir']}", f"ckpt_path={ckpt}",
                          f"queries={good[0]}", "k=abc", f"paths.log_dir={tmp_path / 'logs'}"],
                         cwd=tmp_path, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "error: k: must be a positive integer" in res.stderr and "Traceback" not in res.stderr
