"""torchaudio ABI smoke test: every torchaudio function speechret uses, called on a small tensor.

A torchaudio built against another torch than the installed one fails when its compiled library
loads (``undefined symbol …``).  These tests import torchaudio only inside the test functions, so
such a break fails here, once per function and with the function's name, rather than as a
collection error of an unrelated test file.  ``test_no_module_bypasses_torchaudio_api`` keeps the
list complete: a module that imports torchaudio directly (instead of :mod:`speechret.torchaudio_api`)
fails it, so a new torchaudio call cannot slip in without a smoke call here.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

PACKAGE = Path(__file__).resolve().parents[1] / "speechret"


def _resample():
    from speechret.torchaudio_api import resample

    x = torch.sin(2 * math.pi * 440 * torch.arange(1600) / 16000).repeat(2, 1)
    y = resample(x, 16000, 8000)
    assert y.shape == (2, 800)
    # a 440 Hz tone survives halving the rate: same RMS within 1 %
    assert torch.allclose(y.pow(2).mean(-1).sqrt(), x.pow(2).mean(-1).sqrt(), rtol=0.01)


def _melscale_fbanks():
    from speechret.torchaudio_api import melscale_fbanks

    fb = melscale_fbanks(257, 0.0, 8000.0, 20, 16000, norm="slaney", mel_scale="slaney")
    assert fb.shape == (257, 20) and bool((fb >= 0).all()) and bool((fb.sum(0) > 0).all())


def _create_dct():
    from speechret.torchaudio_api import create_dct

    d = create_dct(13, 40, norm="ortho")
    assert d.shape == (40, 13)
    assert torch.allclose(d.T @ d, torch.eye(13), atol=1e-5)  # orthonormal columns


def _compute_deltas():
    from speechret.torchaudio_api import compute_deltas

    ramp = torch.arange(20, dtype=torch.float32).repeat(3, 1)  # slope 1 per frame
    d = compute_deltas(ramp, win_length=5, mode="replicate")
    assert d.shape == ramp.shape
    assert torch.allclose(d[:, 2:-2], torch.ones(3, 16))


def _masking():
    from speechret.torchaudio_api import FrequencyMasking, TimeMasking

    x = torch.zeros(3, 1, 40, 100)
    m = TimeMasking(30, iid_masks=True)(FrequencyMasking(10, iid_masks=True)(x, mask_value=1.0), mask_value=1.0)
    assert m.shape == x.shape and set(m.unique().tolist()) <= {0.0, 1.0}


CALLS = {
    "FrequencyMasking": _masking,
    "TimeMasking": _masking,
    "resample": _resample,
    "melscale_fbanks": _melscale_fbanks,
    "create_dct": _create_dct,
    "compute_deltas": _compute_deltas,
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_torchaudio_function_runs(name):
    try:
        CALLS[name]()
    except (ImportError, OSError, RuntimeError) as exc:
        import torch as _torch

        from speechret.torchaudio_api import torchaudio_version

        pytest.fail(f"torchaudio {name} failed with torch {_torch.__version__} / torchaudio "
                    f"{torchaudio_version()}: {type(exc).__name__}: {exc}")


def test_every_exported_function_has_a_smoke_call():
    tree = ast.parse((PACKAGE / "torchaudio_api.py").read_text())
    exported = next(ast.literal_eval(n.value) for n in tree.body
                    if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets))
    assert set(exported) - {"torchaudio_version"} == set(CALLS)


def test_no_module_bypasses_torchaudio_api():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "torchaudio_api.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "torchaudio" or n.startswith("torchaudio.") for n in names):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not offenders, f"import torchaudio through speechret.torchaudio_api, not directly: {offenders}"
