"""data.train_extra: other corpora's items join the training split only, by text, speakers apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechret.data.datamodule import SpeechDataModule
from speechret.data.extra_train import parse_train_extra
from speechret.data.synthetic import DEFAULT_WORDS
from speechret.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def main_dm(tiny_corpus, **kw) -> SpeechDataModule:
    """The tiny corpus (4 voices x words 0-3) through its manifest, one voice each for val and test."""
    return SpeechDataModule(corpus="manifest", root=tiny_corpus / "manifest.csv", val_speakers=["syn01"],
                            test_speakers=["syn02"], batch_size=4, **kw)


def test_extra_items_join_training_only_by_text_with_their_speakers_apart(tiny_corpus, tmp_path):
    extra_root = tmp_path / "extra"
    extra = [{"corpus": "synthetic", "root": str(extra_root),
              "corpus_kwargs": {"n_speakers": 2, "repetitions": 1, "words": DEFAULT_WORDS[2:6], "seed": 1}}]
    base, dm = main_dm(tiny_corpus), main_dm(tiny_corpus, train_extra=extra)
    dm.prepare_data()  # generates the extra corpus
    assert (extra_root / "manifest.csv").is_file()
    base.setup()
    dm.setup()

    # validation and test are the main corpus's own, item for item
    for split in ("val", "test"):
        assert [dm.items[i] for i in dm.split_indices[split]] == [base.items[i] for i in base.split_indices[split]]
    assert dm.label_names == base.label_names and dm.num_classes == base.num_classes

    train = [dm.items[i] for i in dm.split_indices["train"]]
    added = train[len(base.split_indices["train"]):]
    assert train[: len(base.split_indices["train"])] == [base.items[i] for i in base.split_indices["train"]]
    # of the extra words 2-5 only 2 and 3 are classes of the main corpus: 2 words x 2 voices x 1 repetition
    shared = {text for text, _ in DEFAULT_WORDS[2:4]}
    assert len(added) == 4 and {it.text for it in added} == shared
    by_text = {text: label for label, text in base.label_names.items()}
    assert all(it.label == by_text[it.text] for it in added)
    assert {it.speaker for it in added} == {"synthetic:syn00", "synthetic:syn01"}
    # the main corpus's syn00 and the extra corpus's syn00 are two voices: the prefix keeps them apart
    assert {"syn00", "synthetic:syn00"} <= set(dm.split_speakers("train"))
    assert not any(s.startswith("synthetic:") for s in dm.split_speakers("val") + dm.split_speakers("test"))
    assert len(dm.datasets["train"]) == len(train)


@pytest.mark.parametrize("spec, match", [
    ("synthetic", r"data\.train_extra\[0\]: expected a mapping"),
    ({"corpus": "synthetic"}, r"data\.train_extra\[0\]: needs both corpus and root"),
    ({"corpus": "synthetic", "root": "x", "words": ["a"]}, r"data\.train_extra\[0\]: unknown keys \['words'\]"),
    ({"corpus": "timit", "root": "x"}, r"data\.train_extra\[0\]\.corpus"),
])
def test_bad_extra_spec_is_a_config_error_naming_the_entry(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_train_extra([spec])


def test_an_extra_corpus_without_the_classes_words_is_refused(tiny_corpus, tmp_path):
    extra = [{"corpus": "synthetic", "root": str(tmp_path / "other"),
              "corpus_kwargs": {"n_speakers": 1, "words": DEFAULT_WORDS[20:22]}}]
    dm = main_dm(tiny_corpus, train_extra=extra)
    dm.prepare_data()
    with pytest.raises(ConfigError, match=r"data\.train_extra\[0\]: none of the 2 items of synthetic .* matched to classes by text"):
        dm.setup()


def test_extra_training_items_need_a_training_split(tiny_corpus):
    with pytest.raises(ConfigError, match="data.split=none has no training split"):
        main_dm(tiny_corpus, split="none", train_extra=[{"corpus": "synthetic", "root": "x"}])


def test_the_espeak_words_option_composes_into_the_data_node(tmp_path):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=["experiment=speechret_hash", "data=dspspeech20",
                                          "data/train_extra=espeak_words", f"paths.data_dir={tmp_path}"])
        plain = compose("train", overrides=["experiment=speechret_hash", "data=dspspeech20"])
    assert plain.data.train_extra is None
    (extra,) = parse_train_extra(cfg.data.train_extra)
    assert extra.corpus == "synthetic" and extra.root == tmp_path / "synth_dspspeech20_words"
    assert extra.speaker_prefix == "espeak:"
    assert list(extra.corpus_kwargs["words"])[:12] == [text for text, _ in DEFAULT_WORDS[:12]]


def test_evaluation_sets_never_include_the_extra_corpus_and_know_it_was_trained_on(tiny_corpus, tmp_path):
    """``evaluate``'s whole-corpus set (split none) is the main corpus alone; what the checkpoint
    trained on (:class:`TrainedOn`, behind the disjointness check) includes the extra voices."""
    from speechret.evaluate.eval_sets import TrainedOn, datamodule

    extra = [{"corpus": "synthetic", "root": str(tmp_path / "extra"), "speaker_prefix": "tts:",
              "corpus_kwargs": {"n_speakers": 2, "repetitions": 1, "words": DEFAULT_WORDS[:4], "seed": 1}}]
    cfg = {"_target_": "speechret.data.datamodule.SpeechDataModule", "corpus": "manifest",
           "root": str(tiny_corpus / "manifest.csv"), "val_speakers": ["syn01"], "test_speakers": ["syn02"],
           "train_extra": extra}
    whole = datamodule(cfg, split="none", relabel=False)
    assert len(whole.items) == 32 and not any(it.speaker.startswith("tts:") for it in whole.items)
    trained = TrainedOn.from_config(cfg)
    assert {"tts:syn00", "tts:syn01", "syn00", "syn03", "syn01"} == set(trained.speakers)
    assert trained.n_items == 24 + 8
