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


@pytest.fixture
def build_speechret_hash(tiny_corpus, tmp_path):
    """``build(*overrides) -> (model, datamodule, cfg)``: ``experiment=speechret_hash`` composed on
    the tiny corpus with the given overrides, its DataModule set up, the model built as train.py does."""
    from hydra import compose, initialize_config_dir

    from speechret.apps.train import build_datamodule, build_model

    def build(*overrides: str):
        with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
            cfg = compose("train", overrides=["experiment=speechret_hash", "data=manifest",
                                              f"data.root={tiny_corpus / 'manifest.csv'}",
                                              f"paths.output_dir={tmp_path}", *overrides])
        dm = build_datamodule(cfg)
        dm.setup()
        return build_model(cfg, dm), dm, cfg

    return build


@pytest.fixture(scope="session")
def tiny_sentences(tmp_path_factory) -> Path:
    """A tiny synthetic sentence corpus for CTC: 3 speakers × 4 sentences × 2 repetitions."""
    from speechret.data.synthetic import DEFAULT_SENTENCES, generate_corpus

    root = tmp_path_factory.mktemp("tiny_sentences")
    generate_corpus(root, n_speakers=3, sentences=DEFAULT_SENTENCES[:4], repetitions=2, seed=0, kind="sentences")
    return root


# --------------------------------------------------------------------------------------------
# a small trained paper-C model (tests with teeth: tests/test_eval_unheard_voices.py)
# --------------------------------------------------------------------------------------------

#: Voices, split speaker-disjoint 6 train / 2 val / 2 test (seeded), so that the thresholds come
#: from a validation split that can form cross-speaker pairs and the test split holds two voices
#: the model never heard.
TRAINED_C_SPEAKERS = 10
TRAINED_C_SPLIT = ("data.val_fraction=0.2", "data.test_fraction=0.2")


def distinct_initial_words(n: int) -> list[tuple[str, str]]:
    """The first ``n`` built-in words whose initials (paper C's 26 pronunciation classes, §3.3)
    differ as sequences: two words with the same initials get the same paper-C code even from a
    perfect model, which would cap every precision below 1 for reasons the test is not about."""
    from speechret.data.pronunciation import pinyin_to_labels
    from speechret.data.synthetic import DEFAULT_WORDS

    first: dict[tuple[int, ...], tuple[str, str]] = {}
    for text, py in DEFAULT_WORDS:
        first.setdefault(tuple(pinyin_to_labels(py)), (text, py))
    return list(first.values())[:n]


def train_one_thread(overrides: list[str]) -> dict:
    """Compose ``conf/train.yaml`` with ``overrides`` and train it with one torch thread (small
    models on a shared machine: one thread is fastest); returns the run summary."""
    import torch
    from hydra import compose, initialize_config_dir

    from speechret.apps.train import train

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=overrides)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(cfg)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_torch_thread():
    """One torch thread for a test of tiny models: their steps are a few small ops each, and on a
    2-core machine a second thread only adds synchronisation (the CTC overfit tests: 5.7 s / 9.0 s
    for 250 steps with one thread, 19-42 s with two under load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def train_composed():
    """:func:`train_one_thread` for test modules (``train_composed(overrides) -> summary``)."""
    return train_one_thread


@pytest.fixture(scope="session")
def trained_paper_c(tmp_path_factory) -> dict:
    """A small paper-C CTC model (BiLSTM over MFCC, 1 × 64 units, paper C's 27-class
    pronunciation model) trained once per test run on the built-in synthetic corpus: 10 voices ×
    12 words + 4 three-word phrases (so the model sees multi-word audio, as keyword search
    needs), one repetition, speaker-disjoint split.  Trained single-threaded: for a model this
    small one thread is the fastest on a shared 2-core machine (thread contention otherwise
    multiplies the time).  Returns ``ckpt``, ``root`` (manifest folder), ``words`` (their labels)."""
    from speechret.data.synthetic import generate_corpus

    words = distinct_initial_words(12)
    phrases = [("".join(words[(j + 5 * k) % 12][0] for k in range(3)), " ".join(words[(j + 5 * k) % 12][1] for k in range(3)))
               for j in range(4)]
    root = tmp_path_factory.mktemp("trained_c_corpus")
    generate_corpus(root, n_speakers=TRAINED_C_SPEAKERS, words=words, sentences=phrases, repetitions=1, seed=0,
                    kind="both")
    out = tmp_path_factory.mktemp("trained_c_run")
    overrides = ["experiment=bilstm_ctc_baseline", "data=manifest", f"data.root={root / 'manifest.csv'}",
                 *TRAINED_C_SPLIT, "data.batch_size=4", "data.cache_features=true",
                 "model.net.hidden=64", "model.net.layers=1", "+model.net.combine=concat", "model.optimizer.lr=0.01",
                 "trainer.max_epochs=8", "+trainer.limit_val_batches=0", "callbacks.model_checkpoint.monitor=null",
                 "callbacks.early_stopping=null", "callbacks.rich_progress_bar=null", "callbacks.lr_monitor=null",
                 "logger=none", "test=false", "seed=0", f"paths.output_dir={out}"]
    summary = train_one_thread(overrides)
    return {"ckpt": summary["best_checkpoint"], "root": root, "words": list(range(len(words))),
            "train_s": summary["wall_time_s"]}


@pytest.fixture
def one_faiss_thread():
    """Single-query searches on tiny indexes: FAISS's thread start-up would dominate otherwise."""
    import faiss

    n = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(n)


@pytest.fixture
def fork_safe_threads(monkeypatch):
    """For tests that fork workers (DDP over gloo): one intra-op thread in this process and
    (through ``OMP_NUM_THREADS``, which Lightning's launcher then leaves alone) in its forked
    workers; the thread count is restored afterwards."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_gloo_ranks(target, world: int, init_file: str, *args, timeout: float = 60.0) -> dict[int, tuple]:
    """Fork ``world`` processes running ``target(rank, world, init_file, *args, results)`` (each sets
    up its gloo process group on ``init_file``) and collect what each puts on ``results`` as
    ``(rank, *payload)``: ``{rank: payload}``.  A rank that dies, or silence past ``timeout``
    seconds, fails the test; every process is joined or killed on the way out."""
    import multiprocessing as mp
    import queue
    import time

    ctx = mp.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(r, world, init_file, *args, results)) for r in range(world)]
    for p in procs:
        p.start()
    got: dict[int, tuple] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(got) < world:
            try:
                rank, *payload = results.get(timeout=0.5)
                got[rank] = tuple(payload)
            except queue.Empty:
                assert all(p.is_alive() or p.exitcode == 0 for p in procs), "a rank failed"
                assert time.monotonic() < deadline, f"the ranks did not answer within {timeout:g} s"
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return got


@pytest.fixture(scope="session")
def gloo_ranks():
    """:func:`run_gloo_ranks` for test modules (``gloo_ranks(target, world, init_file, *args)``)."""
    return run_gloo_ranks
