"""Export of the hasher's front half (speechret/export.py): the TorchScript file gives the
Hasher's codes bit for bit on clips of many lengths, loads with torch alone, and refuses what
it cannot trace (paper C's variable-length codes).

The checkpoints are random-weight models saved the way test_bad_input.py saves one (the
property under test is "same computation", which needs a deterministic model, not a good one).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from speechret.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def random_checkpoint(experiment: str, out: Path, *overrides: str) -> str:
    """A checkpoint of ``experiment`` with random weights (seed 0), as train.py stores one
    (classification models get 4 classes unless ``overrides`` say otherwise)."""
    if "ctc" not in experiment and not any(o.startswith("model.num_classes=") for o in overrides):
        overrides = ("model.num_classes=4", *overrides)
    from speechret.hashing.hasher import Hasher

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=[f"experiment={experiment}", f"paths.output_dir={out / 'run'}", *overrides])
    torch.manual_seed(0)
    h = Hasher.from_config(cfg)
    path = out / f"{experiment}.ckpt"
    torch.save({"speechret": h.config, "state_dict": h.module.state_dict()}, path)
    return str(path)


def clip(n: int, seed: int) -> np.ndarray:
    """Speech-like harmonics with near-silence of random length before and after (so the
    silence-trimming front end cuts different amounts from each clip)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    f0 = rng.uniform(90, 250) + 30 * np.sin(2 * np.pi * rng.uniform(0.3, 2) * t)
    ph = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(rng.uniform(0.1, 1) / k * np.sin(k * ph) for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    x = 0.5 * x / np.abs(x).max()
    a, b = int(rng.integers(0, n // 3)), int(rng.integers(0, n // 3))
    x[:a] = 0
    x[n - b:] = 0
    return (x + 3e-4 * rng.standard_normal(n)).astype(np.float32)


#: 20 clips from 0.05 s to 7 s (the traced example is 1.5 s)
LENGTHS = [800, 3200, 4001, 7919, 12000, 16000, 19999, 24000, 24001, 31234, 40000, 47111, 56000, 63999, 64000,
           64001, 71000, 80000, 96000, 112000]


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [clip(n, i) for i, n in enumerate(LENGTHS)]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """``experiment -> (checkpoint, exported file)``, made once per module."""
    from speechret.export import export_hasher

    made: dict[str, tuple[str, Path]] = {}
    root = tmp_path_factory.mktemp("exports")

    def get(experiment: str) -> tuple[str, Path]:
        if experiment not in made:
            ckpt = random_checkpoint(experiment, root, "views=none")  # one view: what a trace holds
            made[experiment] = (ckpt, export_hasher(ckpt, root / f"{experiment}.pt"))
        return made[experiment]

    return get


@pytest.mark.parametrize("experiment,method", [("speechret_hash", "speechret"), ("lstm_hash", "paper_a"),
                                               ("cnn_hash", "paper_b")])
def test_exported_codes_equal_the_hashers_bit_for_bit(experiment, method, clips, exports):
    from speechret.export import load_exported
    from speechret.hashing.hasher import Hasher

    torch.set_num_threads(1)
    ckpt, out = exports(experiment)
    exported = load_exported(out)
    hasher = Hasher.from_checkpoint(ckpt)
    assert exported.method == hasher.method == method and exported.sample_rate == SR
    assert (hasher.frontend is not None) == (experiment == "speechret_hash")  # the trim front end is covered
    if hasher.frontend is not None:  # ... and it does cut these clips, at both ends
        spans = [hasher.frontend.spans(torch.from_numpy(c)[None], torch.tensor([len(c)])) for c in clips]
        assert sum(int(a) > 0 and int(b) < len(c) for (a, b), c in zip(spans, clips)) >= 10
    want = hasher.codes(clips)  # batched, padded: the path index.py and search.py take
    got = exported.codes(clips).numpy()
    assert got.dtype == bool and got.shape == want.shape == (len(clips), exported.code_bits)
    for n, a, b in zip(LENGTHS, got, want):
        assert np.array_equal(a, b), f"{experiment}: exported code differs for a clip of {n} samples"
    assert len({g.tobytes() for g in got}) > 10  # the codes do depend on the clip
    # numpy input, tensor input and one clip give the same bits
    assert torch.equal(exported(torch.from_numpy(clips[3])), exported(clips[3]))
    with pytest.raises(ValueError, match="mono"):
        exported(np.zeros((2, 16000), np.float32))


def test_exported_energy_region_trim_equals_the_hashers_bit_for_bit(tmp_path, clips):
    """``frontend.region=energy`` (the trim keeps the region holding the most energy): the traced
    span detection follows every clip length, clicks louder than the word included."""
    from speechret.export import export_hasher, load_exported
    from speechret.hashing.hasher import Hasher

    torch.set_num_threads(1)
    clicked = []
    for k, c in enumerate(clips[8:14]):
        c = c.copy()
        c[:400] = 0.95 * np.sign(np.sin(np.arange(400) * (0.3 + k)))  # a click at the onset, louder than the word
        clicked.append(c)
    ckpt = random_checkpoint("speechret_hash", tmp_path, "views=none", "frontend.region=energy")
    exported = load_exported(export_hasher(ckpt, tmp_path / "energy.pt"))
    hasher = Hasher.from_checkpoint(ckpt)
    assert hasher.frontend.region == "energy"
    peak = copy.copy(hasher.frontend)
    peak.region = "peak"
    moved = [int(peak.spans(torch.from_numpy(c)[None], torch.tensor([len(c)]))[0])
             != int(hasher.frontend.spans(torch.from_numpy(c)[None], torch.tensor([len(c)]))[0]) for c in clicked]
    assert sum(moved) >= 3  # the clicks do take the peak rule's crop
    both = clips + clicked
    assert np.array_equal(exported.codes(both).numpy(), hasher.codes(both))


def test_exported_join_gap_trim_equals_the_hashers_bit_for_bit(tmp_path, clips):
    """``frontend.join_gap_ms`` (a neighbouring syllable joins the word region across a longer
    silence): the traced span detection follows every clip length, split words included."""
    from speechret.export import export_hasher, load_exported
    from speechret.hashing.hasher import Hasher

    torch.set_num_threads(1)
    split = []
    for c in clips[9:16]:  # 2-4 s clips: 0.35 s of silence cut into the middle of the sound
        c = c.copy()
        nz = np.flatnonzero(np.abs(c) > 0.01)
        mid = (nz[0] + nz[-1]) // 2
        split.append(np.concatenate([c[:mid], 3e-4 * np.ones(5600, np.float32), c[mid:]]))
    ckpt = random_checkpoint("speechret_hash", tmp_path, "views=none", "frontend.join_gap_ms=500")
    exported = load_exported(export_hasher(ckpt, tmp_path / "join.pt"))
    hasher = Hasher.from_checkpoint(ckpt)
    assert hasher.frontend.join_gap == 50
    alone = copy.copy(hasher.frontend)
    alone.join_gap = None
    moved = [torch.stack(alone.spans(torch.from_numpy(c)[None], torch.tensor([len(c)])))
             .ne(torch.stack(hasher.frontend.spans(torch.from_numpy(c)[None], torch.tensor([len(c)])))).any().item()
             for c in split]
    assert sum(moved) >= 3  # the join does move these clips' spans
    both = clips + split
    assert np.array_equal(exported.codes(both).numpy(), hasher.codes(both))


def test_exported_pitch_track_equals_the_hashers_bit_for_bit(tmp_path, clips):
    """``features=logmel64_pitch`` with the net's pitch branch: the traced YIN track (resampling,
    framing, the threshold's first crossing, the median smoothing) follows every clip length."""
    from speechret.export import export_hasher, load_exported
    from speechret.hashing.hasher import Hasher

    torch.set_num_threads(1)
    ckpt = random_checkpoint("speechret_hash", tmp_path, "views=none", "features=logmel64_pitch",
                             "model.net.pitch_points=16")
    exported = load_exported(export_hasher(ckpt, tmp_path / "pitch.pt"))
    hasher = Hasher.from_checkpoint(ckpt)
    assert type(hasher.features).__name__ == "LogMelPitch" and hasher.module.net.pitch_points == 16
    assert np.array_equal(exported.codes(clips).numpy(), hasher.codes(clips))


def test_loader_needs_only_torch(tmp_path, clips, exports):
    from speechret.hashing.hasher import Hasher

    ckpt, out = exports("speechret_hash")
    np.save(tmp_path / "clip.npy", clips[5])
    code = f"""
import sys, json, numpy as np
for blocked in ("lightning", "hydra", "omegaconf", "faiss"):  # not installed, as far as this process knows
    sys.modules[blocked] = None
from speechret.export import load_exported
h = load_exported({str(out)!r})
bits = h(np.load({str(tmp_path / 'clip.npy')!r}))
print(json.dumps({{"bits": bits.int().tolist(), "mods": sorted(m for m in ("lightning", "hydra", "omegaconf", "faiss",
      "speechret.hashing", "speechret.features", "speechret.models") if sys.modules.get(m) is not None)}}))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["mods"] == []
    assert got["bits"] == Hasher.from_checkpoint(ckpt).codes([clips[5]])[0].astype(int).tolist()


def test_export_refuses_paper_c(tmp_path):
    from speechret.export import export_hasher

    ckpt = random_checkpoint("bilstm_ctc_baseline", tmp_path, "model.net.hidden=16", "model.net.layers=1")
    with pytest.raises(ConfigError, match="paper_c codes"):
        export_hasher(ckpt, tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.save's deprecation notice (torch >= 2.9)
def test_load_exported_refuses_other_files(tmp_path):
    from speechret.export import load_exported

    other = torch.jit.script(torch.nn.Linear(2, 2))
    torch.jit.save(other, str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="not a speechret exported hasher"):
        load_exported(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_exported(tmp_path / "absent.pt")


def readme_block(heading: str) -> str:
    """The first ```python block under ``heading`` in README.md."""
    text = (REPO / "README.md").read_text()
    start = text.index(heading + "\n")
    m = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert m is not None, f"no python block under {heading}"
    return m.group(1)


def test_readme_export_example_runs(tmp_path):
    checkpoint = random_checkpoint("lstm_hash", tmp_path)
    ns = {"checkpoint": checkpoint, "exported_path": str(tmp_path / "lstm_hash.pt"), "clip": clip(20000, 7)}
    exec(compile(readme_block("### Exporting the hasher"), "README.md", "exec"), ns)
    assert ns["bits"].shape == (1, 384)


def test_exported_views_equal_the_hashers_bit_for_bit(tmp_path, clips):
    """A run with test-time views (speechret_hash's default, speed5) exports its views: each clip is
    played at the five speeds inside the file and the views merged, bit for bit the Hasher's code
    (the one index.py and search.py store), and not the single-view code."""
    from speechret.export import export_hasher, load_exported
    from speechret.hashing.hasher import Hasher

    torch.set_num_threads(1)
    ckpt = random_checkpoint("speechret_hash", tmp_path, "views=speed5", "model.net.channels=[8,16,32,32]")
    exported = load_exported(export_hasher(ckpt, tmp_path / "v.pt"))
    hasher = Hasher.from_checkpoint(ckpt)
    assert hasher.n_views == 5 and exported.metadata["views"] == [0.8, 0.9, 1.0, 1.1, 1.2]
    some = clips[::3]
    want = hasher.codes(some)
    got = exported.codes(some).numpy()
    for n, a, b in zip(LENGTHS[::3], got, want):
        assert np.array_equal(a, b), f"exported views code differs for a clip of {n} samples"
    one_view = Hasher.from_checkpoint(ckpt, views="none").codes(some)
    assert not np.array_equal(got, one_view)  # the views are in the file, not just the centre one
