"""ConcatWords: multi-word training rows for CTC models (speechret.concat)."""

from __future__ import annotations

import pytest
import torch

from speechret.concat import ConcatWords
from speechret.errors import ConfigError


def word_batch(lengths, n_labels=3):
    """Items whose samples are all ``i + 1`` (so each word is recognisable in a row) and whose
    targets are ``[i, i, ...]`` of ``i % n_labels + 1`` labels, padded with -1."""
    b, t = len(lengths), max(lengths)
    wave = torch.zeros(b, t)
    tl = [i % n_labels + 1 for i in range(b)]
    targets = torch.full((b, max(tl)), -1, dtype=torch.long)
    for i, n in enumerate(lengths):
        wave[i, :n] = float(i + 1)
        wave[i, n:] = -9.0  # junk past an item's length must never reach a row
        targets[i, : tl[i]] = i
    return {"wave": wave, "wave_lengths": torch.tensor(lengths), "targets": targets,
            "target_lengths": torch.tensor(tl), "label": torch.arange(b) + 100,
            "index": torch.arange(b) + 1000, "ids": [f"w{i}" for i in range(b)], "speakers": [f"s{i}" for i in range(b)]}


def parse_row(row, n):
    """The words of a row as ``[(item, start, length)]`` and the pauses between them."""
    words, pauses, pos = [], [], 0
    vals = row[:n]
    while pos < n:
        v = float(vals[pos])
        end = pos
        while end < n and float(vals[end]) == v:
            end += 1
        (words if v != 0.0 else pauses).append((int(v) - 1, pos, end - pos) if v else end - pos)
        pos = end
    return words, pauses


def test_rows_are_the_batch_words_joined_by_pauses_with_their_targets_in_the_same_order():
    lengths = [300, 120, 400, 50, 222, 310, 90, 160, 200, 75]
    batch = word_batch(lengths)
    sr = 1000
    cat = ConcatWords(words=(2, 3), pause_s=(0.01, 0.05), sample_rate=sr, max_seconds=None, seed=1).train()
    out = cat(batch)
    r = out["wave"].shape[0]
    assert r < len(lengths)
    seen = []
    for k in range(r):
        n = int(out["wave_lengths"][k])
        assert n <= out["wave"].shape[1] and bool((out["wave"][k, n:] == 0).all())  # padding is silence
        words, pauses = parse_row(out["wave"][k], n)
        items = [w[0] for w in words]
        assert [w[2] for w in words] == [lengths[i] for i in items]  # whole words, nothing of the junk
        assert len(pauses) == len(items) - 1 and all(10 <= p <= 50 for p in pauses)  # between words only
        assert 1 <= len(items) <= 3
        tl = int(out["target_lengths"][k])
        want = torch.cat([batch["targets"][i, : int(batch["target_lengths"][i])] for i in items])
        assert torch.equal(out["targets"][k, :tl], want) and bool((out["targets"][k, tl:] == -1).all())
        assert out["ids"][k] == "+".join(f"w{i}" for i in items)
        assert int(out["index"][k]) == 1000 + items[0] and out["speakers"][k] == f"s{items[0]}"
        assert int(out["label"][k]) == (100 + items[0] if len(items) == 1 else -1)  # no class for a row of words
        seen += items
    assert sorted(seen) == list(range(len(lengths)))  # every word once: re-packed, not enlarged


def test_rows_stop_at_max_seconds_and_a_single_long_word_stays_whole():
    lengths = [900, 400, 400, 400, 1500, 300]
    cat = ConcatWords(words=(4, 4), pause_s=(0.1, 0.1), sample_rate=1000, max_seconds=1.0, seed=0).train()
    out = cat(word_batch(lengths))
    n = out["wave_lengths"].tolist()
    assert all(x <= 1000 or x == 1500 for x in n) and 1500 in n
    assert sum(len(parse_row(out["wave"][k], n[k])[0]) for k in range(len(n))) == len(lengths)


def test_identity_in_eval_at_p0_and_for_one_word_rows_and_a_clear_error_without_ctc_targets():
    batch = word_batch([100, 200, 300])
    assert ConcatWords().eval()(batch) is batch
    assert ConcatWords(p=0.0).train()(batch) is batch
    assert ConcatWords(words=(1, 1)).train()(batch) is batch
    no_targets = {k: v for k, v in batch.items() if k not in ("targets", "target_lengths")}
    with pytest.raises(ConfigError, match="augment.concat.*data.target=ctc"):
        ConcatWords().train()(no_targets)
    with pytest.raises(ConfigError, match="augment.concat.words"):
        ConcatWords(words=(0, 2))
    with pytest.raises(ConfigError, match="augment.concat.pause_s"):
        ConcatWords(pause_s=(0.5, 0.1))
    with pytest.raises(ConfigError, match="augment.concat.pack"):
        ConcatWords(pack="sentence")


def test_pack_batch_gives_every_row_of_a_batch_one_word_count_drawn_in_proportion_to_it():
    """pack=batch: one count k per batch (the last row holds the remainder), P(k) ~ k, so that the
    share of rows with k words is uniform and the share of words in rows of k grows with k, as in
    pack=row; and every word of the batch is in exactly one row."""
    n, draws = 24, 4000
    cat = ConcatWords(words=(1, 4), pause_s=(0.0, 0.0), max_seconds=None, seed=3, pack="batch")
    ks = []
    for _ in range(draws):
        rows = cat.groups([100] * n)
        sizes = [len(items) for items, _ in rows]
        k = sizes[0]
        assert all(s == k for s in sizes[:-1]) and 1 <= sizes[-1] <= k  # one count, the remainder last
        assert sorted(i for items, _ in rows for i in items) == list(range(n))
        ks.append(k)
    share = torch.bincount(torch.tensor(ks), minlength=5)[1:].double() / draws
    assert torch.allclose(share, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64), atol=0.03)
    row_words = torch.zeros(4, dtype=torch.float64)  # rows of each count, per 24 words: 24/k batches of k
    for k in ks:
        row_words[k - 1] += n / k
    assert (row_words / row_words.sum() - 0.25).abs().max() < 0.03
    row = ConcatWords(words=(1, 4), max_seconds=None, seed=3, pack="row")
    assert any(len({len(items) for items, _ in row.groups([100] * n)[:-1]}) > 1 for _ in range(20))


def test_pack_batch_pads_a_batch_less_than_pack_row():
    """The point of pack=batch: rows of one word count have about equal length, so the padded
    batch (rows x longest row) holds less silence than pack=row's mix of 1- and 4-word rows."""
    gen = torch.Generator().manual_seed(0)
    padded = {}
    for pack in ("row", "batch"):
        cat = ConcatWords(words=(1, 4), pause_s=(0.05, 0.5), sample_rate=1000, max_seconds=None, seed=1, pack=pack)
        total = 0
        for _ in range(300):
            lengths = torch.randint(400, 900, (16,), generator=gen).tolist()
            rows = cat.groups(lengths)
            longest = max(sum(lengths[i] for i in items) + sum(pauses) for items, pauses in rows)
            total += len(rows) * longest
        padded[pack] = total
    assert padded["batch"] < 0.8 * padded["row"]


def test_draws_are_seeded():
    batch = word_batch([100, 200, 300, 50, 80, 120])
    a = ConcatWords(seed=5).train()(dict(batch))
    b = ConcatWords(seed=5).train()(dict(batch))
    assert torch.equal(a["wave"], b["wave"]) and a["ids"] == b["ids"]


def test_datamodule_repacks_training_batches_before_the_waveform_chain(tiny_corpus):
    """In prepare_batch the rows are made after the front end and before the features; the
    features then cover whole rows, and validation batches are untouched."""
    from speechret.data.datamodule import SpeechDataModule
    from speechret.features import LogMel

    dm = SpeechDataModule(corpus="synthetic", root=tiny_corpus, batch_size=6, target="ctc", features=LogMel(),
                          concat_augment=ConcatWords(words=(2, 2), pause_s=(0.1, 0.1), max_seconds=None))
    dm.setup()
    assert dm.augments_train
    batch = next(iter(dm.train_dataloader()))
    lengths, tl = batch["wave_lengths"].clone(), batch["target_lengths"].clone()
    out = dm.prepare_batch(dict(batch), augment=True)
    rows = out["wave"].shape[0]
    assert rows == (len(lengths) + 1) // 2 == out["features"].shape[0] == len(out["feature_lengths"])
    assert int(out["wave_lengths"].sum()) == int(lengths.sum()) + 1600 * (len(lengths) - rows)
    assert int(out["target_lengths"].sum()) == int(tl.sum())
    val = next(iter(dm.val_dataloader()))
    assert dm.prepare_batch(dict(val), augment=False)["wave"].shape[0] == val["wave"].shape[0]


@pytest.mark.parametrize("target", ["class", "both"])
def test_datamodule_refuses_multi_word_rows_for_content_classes(tiny_corpus, target):
    from speechret.data.datamodule import SpeechDataModule

    with pytest.raises(ConfigError, match=f"augment.concat.*data.target={target}"):
        SpeechDataModule(corpus="synthetic", root=tiny_corpus, target=target, concat_augment=ConcatWords())
