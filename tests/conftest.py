"""Shared fixtures.

``realdata`` tests read ``../shared/data/dspspeech20`` (or ``$SPEECHRET_SHARED_DATA/dspspeech20``).
They are skipped when the data is absent, except under CI (``CI=true``) where a missing shared
dataset is a failure: CI must never go green by silently skipping the real-data checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    env = os.environ.get("SPEECHRET_SHARED_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def dspspeech20_root() -> Path:
    root = shared_data_root() / "dspspeech20"
    if not (root / "manifest.csv").is_file():
        msg = f"DSPSpeech-20 not found at {root} (set SPEECHRET_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " - CI requires the shared dataset")
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A tiny synthetic Mandarin corpus (espeak-ng): 4 speakers × 4 words × 2 repetitions."""
    from speechret.data.synthetic import DEFAULT_WORDS, generate_corpus

    root = tmp_path_factory.mktemp("tiny_corpus")
    generate_corpus(root, n_speakers=4, words=DEFAULT_WORDS[:4], repetitions=2, seed=0, kind="words")
    return root


@pytest.fixture(scope="session")
def tiny_sentences(tmp_path_factory) -> Path:
    """A tiny synthetic sentence corpus for CTC: 3 speakers × 4 sentences × 2 repetitions."""
    from speechret.data.synthetic import DEFAULT_SENTENCES, generate_corpus

    root = tmp_path_factory.mktemp("tiny_sentences")
    generate_corpus(root, n_speakers=3, sentences=DEFAULT_SENTENCES[:4], repetitions=2, seed=0, kind="sentences")
    return root
