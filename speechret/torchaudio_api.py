"""torchaudio as speechret uses it: the package's one import of torchaudio.

speechret calls four functions of ``torchaudio.functional`` and two transforms:

* :func:`resample` — windowed-sinc resampling, batched on the tensor's device
  (:func:`speechret.audio.resample_torch`, the ``resample_*`` CPO);
* :func:`melscale_fbanks` — mel filterbanks (Log-Mel, MFCC, Log-Mel image, paper A eq. (1)–(2),
  paper B eq. (4));
* :func:`create_dct` — the DCT-II matrix of MFCC (paper A eq. (3));
* :func:`compute_deltas` — Δ and ΔΔ coefficients (paper C §5.1 MFCC baseline);
* :class:`FrequencyMasking` / :class:`TimeMasking` — SpecAugment masks
  (:class:`speechret.spec_augment.SpecAugment`).

Every other module imports them from here (``tests/test_torchaudio_api.py`` checks that no module
imports torchaudio directly and calls each function on a small tensor).  torchaudio's compiled
library is built against one torch ABI: a torchaudio that was built against another torch than
the installed one fails to load (``undefined symbol …``).  This module turns that failure into an
``ImportError`` that names both versions and the fix, instead of an ``OSError`` from whichever
module happened to import torchaudio first.  The pair that works is pinned in ``pyproject.toml``
(``[tool.uv] constraint-dependencies``) and installed exactly by ``make setup`` from ``uv.lock``.
"""

from __future__ import annotations

from importlib import metadata

import torch

__all__ = [
    "resample",
    "melscale_fbanks",
    "create_dct",
    "compute_deltas",
    "FrequencyMasking",
    "TimeMasking",
    "torchaudio_version",
]


def torchaudio_version() -> str:
    """Installed torchaudio distribution version (read without importing torchaudio)."""
    try:
        return metadata.version("torchaudio")
    except metadata.PackageNotFoundError:
        return "not installed"


try:
    from torchaudio.functional import compute_deltas, create_dct, melscale_fbanks, resample
    from torchaudio.transforms import FrequencyMasking, TimeMasking
except (OSError, ImportError) as exc:  # an ABI mismatch surfaces as OSError from the .so loader
    raise ImportError(
        f"torchaudio {torchaudio_version()} cannot be loaded beside torch {torch.__version__}: {exc}. "
        "torch and torchaudio must be a matching pair; speechret's lock pins one "
        "(pyproject.toml [tool.uv] constraint-dependencies): run `make setup` to install exactly uv.lock, "
        "or install the pair named there."
    ) from exc
