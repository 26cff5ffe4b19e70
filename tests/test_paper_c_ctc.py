"""Paper C CTC details: blank agreement between module and network, repeated syllables in the
segmentation, and prefix beam search beside greedy decoding (eq. 8)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from speechret.hashing import OTHER_INDEX, codes_from_output, segments_paper_c
from speechret.models.components import ModelOutput
from speechret.models.components.bilstm_baseline import BiLSTMBaseline
from speechret.models.hash_modules import (
    CTCHashModule,
    ctc_decode,
    ctc_prefix_beam_search,
    greedy_ctc_decode,
)

REPO = Path(__file__).resolve().parents[1]
CTC_EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*ctc*.yaml"))


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose("train", overrides=overrides)


# ----------------------------------------------------------------------------- blank agreement
def _small(n_outputs=None):
    return BiLSTMBaseline(n_features=8, hidden=8, layers=1, n_classes=27, n_outputs=n_outputs)


def test_module_blank_must_be_the_networks_blank_output():
    assert CTCHashModule(_small(27), blank=26).hparams.blank == 26
    assert CTCHashModule(_small(28), blank=27).hparams.blank == 27
    # blank=None (the configs' choice) takes the network's blank output
    assert CTCHashModule(_small(27)).hparams.blank == 26
    assert CTCHashModule(_small()).hparams.blank == 27  # network default: 28 outputs, blank last
    with pytest.raises(ValueError, match=r"blank=26.*at output 27"):
        CTCHashModule(_small(), blank=26)  # the old defaults: module 26, network 28 outputs
    with pytest.raises(ValueError, match=r"blank=27.*at output 26"):
        CTCHashModule(_small(27), blank=27)
    with pytest.raises(ValueError, match="blank_index"):
        CTCHashModule(torch.nn.Identity())  # no blank_index to take


@pytest.mark.parametrize("experiment", CTC_EXPERIMENTS)
def test_ctc_configs_agree_on_the_blank(experiment):
    # the paper's three, and the CPU-feasible sizes of the two SVS models (issue 13)
    assert set(CTC_EXPERIMENTS) == {"cnn3d_bilstm_ctc", "biconvlstm_ctc", "bilstm_ctc_baseline",
                                    "cnn3d_bilstm_ctc_cpu", "biconvlstm_ctc_cpu"}
    cfg = compose_cfg([f"experiment={experiment}"])
    module = instantiate(cfg.model)
    assert module.hparams.blank == module.net.blank_index == cfg.model.net.n_outputs - 1
    assert module.hparams.other_index == OTHER_INDEX and module.hparams.decoding == "greedy"
    if experiment == "bilstm_ctc_baseline":  # the cheap one: the separate-blank variant too
        sep = instantiate(compose_cfg([f"experiment={experiment}", "model.net.n_outputs=28"]).model)
        assert sep.hparams.blank == sep.net.blank_index == 27
        with pytest.raises(InstantiationException, match=r"blank mismatch.*blank=26.*output 27"):
            instantiate(compose_cfg([f"experiment={experiment}", "model.blank=26", "model.net.n_outputs=28"]).model)


# --------------------------------------------------------------------- repeated syllables ("ba ba")
B, O = 0, OTHER_INDEX  # initial "b", class "other" (the blank when the net has 27 outputs)


def _posteriorgram(path, n_out=27, peak=8.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(len(path), n_out, generator=g)
    x[torch.arange(len(path)), torch.as_tensor(path)] += peak
    return x


def test_repeated_syllable_stays_two_segments_blank_is_other():
    # "ba ba": b peak, blank/"other", b peak (27 outputs: "other" is the CTC blank)
    path = [O, B, B, O, O, B, O]
    logits = _posteriorgram(path)
    out = ModelOutput(logits=logits[None], hash_features=logits[None], lengths=torch.tensor([len(path)]))
    codes = codes_from_output("paper_c", out)[0]
    assert codes.shape == (2, 27)
    seg = segments_paper_c(logits)
    assert seg.labels.tolist() == [B, B] and seg.start.tolist() == [1, 5] and seg.end.tolist() == [2, 5]
    assert greedy_ctc_decode(logits[None], torch.tensor([len(path)]), blank=O) == [[B, B]]
    # the literal reading of eq. (10) over F' merges them into one segment (documented option)
    assert segments_paper_c(logits, merge_across_other=True).labels.tolist() == [B]
    assert codes_from_output("paper_c", out, merge_across_other=True)[0].shape == (1, 27)


def test_repeated_syllable_stays_two_segments_separate_blank():
    # 28 outputs, blank 27: "b _ b" is two b's for CTC, and two segments
    path = [B, 27, B, B]
    logits = _posteriorgram(path, n_out=28)
    out = ModelOutput(logits=logits[None], hash_features=logits[None, :, :27], lengths=torch.tensor([4]))
    assert codes_from_output("paper_c", out)[0].shape == (2, 27)
    assert greedy_ctc_decode(logits[None], torch.tensor([4]), blank=27) == [[B, B]]


@pytest.mark.parametrize("n_out", [27, 28])
def test_segment_labels_are_the_greedy_ctc_decoding(n_out):
    """The segments of §4.4 steps 2–3 carry exactly the labels best-path CTC decoding reads
    (without "other"), for random peaky posteriorgrams with many repeats."""
    rng = np.random.default_rng(n_out)
    blank = n_out - 1
    for trial in range(30):
        path = rng.choice([0, 1, 2, O, blank], size=int(rng.integers(1, 25)), p=[0.2, 0.15, 0.1, 0.25, 0.3])
        logits = _posteriorgram(path.tolist(), n_out, seed=trial)
        out = ModelOutput(logits=logits[None], hash_features=logits[None, :, :27], lengths=torch.tensor([len(path)]))
        drop = logits.argmax(-1) == 27 if n_out == 28 else None
        labels = segments_paper_c(logits[:, :27], drop_mask=drop).labels.tolist()
        decoded = [c for c in greedy_ctc_decode(logits[None], torch.tensor([len(path)]), blank)[0] if c != O]
        assert labels == decoded
        assert codes_from_output("paper_c", out)[0].shape[0] == len(decoded)


# ----------------------------------------------------------------------------- beam vs greedy
def _brute_force_best_labelling(probs: np.ndarray, blank: int) -> tuple[tuple[int, ...], float]:
    """argmax_Y P(Y|X) of eq. (8) by summing every path of every labelling."""
    total: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(probs.shape[1]), repeat=probs.shape[0]):
        lab = tuple(c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1]))
        total[lab] = total.get(lab, 0.0) + float(np.prod(probs[np.arange(len(path)), path]))
    best = max(total.items(), key=lambda kv: (kv[1], tuple(-x for x in kv[0])))
    return best[0], best[1]


def test_beam_search_finds_the_most_probable_labelling_where_greedy_does_not():
    # two frames, P(a) = 0.4, P(blank) = 0.6 in each: the best path is "blank blank" -> "",
    # P("") = 0.36, but "a" has three paths (a a, a _, _ a): P("a") = 0.16 + 0.24 + 0.24 = 0.64
    a, blank = 0, 1
    probs = torch.tensor([[[0.4, 0.6], [0.4, 0.6]]])
    lengths = torch.tensor([2])
    assert greedy_ctc_decode(probs.log(), lengths, blank) == [[]]
    assert ctc_prefix_beam_search(probs.log(), lengths, blank, beam_width=4) == [[a]]
    assert _brute_force_best_labelling(probs[0].numpy(), blank)[0] == (a,)
    # through the module, as its PER decoding
    module = CTCHashModule(_small(28), blank=27, decoding="beam", beam_width=4)
    logits = torch.full((1, 2, 28), -30.0)
    logits[0, :, a], logits[0, :, 27] = np.log(0.4), np.log(0.6)
    out = ModelOutput(logits=logits, hash_features=logits[..., :27], lengths=lengths)
    assert module.decode(out) == [[a]]
    assert CTCHashModule(_small(28), blank=27).decode(out) == [[]]  # default: greedy
    with pytest.raises(ValueError, match="decoding"):
        CTCHashModule(_small(28), decoding="viterbi")


def test_wide_beam_equals_exhaustive_search_and_handles_repeats():
    rng = np.random.default_rng(0)
    blank = 2
    for _ in range(25):
        T = int(rng.integers(1, 6))
        probs = rng.dirichlet(np.full(3, 0.7), size=T)
        lp = torch.from_numpy(np.log(probs))[None]
        got = ctc_prefix_beam_search(lp, torch.tensor([T]), blank, beam_width=3 ** T)[0]
        want, p_want = _brute_force_best_labelling(probs, blank)
        p_got = _brute_force_best_labelling_prob(probs, blank, tuple(got))
        assert tuple(got) == want or np.isclose(p_got, p_want)  # equal up to an exact tie
    # "a _ a" is two a's, "a a" one (CTC's collapsing map)
    a, b_ = [0.98, 0.01, 0.01], [0.01, 0.01, 0.98]
    n3 = torch.tensor([3])
    a_blank_a = torch.log(torch.tensor([a, b_, a]))[None]
    assert ctc_decode(a_blank_a, n3, blank, "beam") == [[0, 0]] == greedy_ctc_decode(a_blank_a, n3, blank)
    a_a_blank = torch.log(torch.tensor([a, a, b_]))[None]
    assert ctc_decode(a_a_blank, n3, blank, "beam") == [[0]] == greedy_ctc_decode(a_a_blank, n3, blank)
    assert ctc_decode(a_blank_a, torch.tensor([0]), blank, "beam") == [[]]


def _brute_force_best_labelling_prob(probs: np.ndarray, blank: int, labelling: tuple[int, ...]) -> float:
    p = 0.0
    for path in itertools.product(range(probs.shape[1]), repeat=probs.shape[0]):
        lab = tuple(c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1]))
        if lab == labelling:
            p += float(np.prod(probs[np.arange(len(path)), path]))
    return p
