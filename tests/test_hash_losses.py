"""Hash-learning objectives (speechret.models.losses): centres, and each loss learns on a tiny batch."""

from __future__ import annotations

import functools

import pytest
import torch

from speechret.models.losses import (BitBalanceLoss, CenterLoss, HashObjective, PairwiseLikelihoodLoss,
                                     SpeakerAdversaryLoss, TripletLoss, hash_centers)


def test_hadamard_centres_are_pairwise_half_apart():
    c = hash_centers(20, 64)
    assert c.shape == (20, 64) and set(c.unique().tolist()) == {-1.0, 1.0}
    ham = (c[:, None, :] != c[None, :, :]).sum(-1)
    off = ~torch.eye(20, dtype=torch.bool)
    # rows of H and -H: distance K/2 except a row and its own negation (K)
    assert set(ham[off].unique().tolist()) <= {32, 64}


def test_random_centres_when_hadamard_impossible():
    c = hash_centers(10, 48)  # 48 is not a power of two
    assert c.shape == (10, 48) and torch.equal(c, hash_centers(10, 48, seed=0))
    with pytest.raises(ValueError, match="power-of-two"):
        hash_centers(10, 48, kind="hadamard")


def _tiny_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(24, 16, generator=g)
    labels = torch.arange(4).repeat_interleave(6)
    return x, labels


@pytest.mark.parametrize("make", [
    lambda: CenterLoss(4, 32),
    lambda: PairwiseLikelihoodLoss(),
    lambda: TripletLoss(),
    # the tiny batch's 24 items in 3 voices (item i by voice i % 3): every word has other-voice positives
    lambda: functools.partial(TripletLoss(cross_speaker=True), speakers=[f"s{i % 3}" for i in range(24)]),
    lambda: HashObjective({"center": CenterLoss(4, 32), "balance": BitBalanceLoss()}, {"balance": 0.1}),
], ids=["center", "dpsh", "triplet", "triplet_cross_speaker", "center+balance"])
def test_each_loss_decreases_on_a_tiny_batch(make):
    torch.manual_seed(0)
    x, labels = _tiny_batch()
    net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32))
    loss_fn = make()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)

    def value():
        out = loss_fn(torch.tanh(net(x)), labels)
        return out[0] if isinstance(out, tuple) else out

    first = float(value().detach())
    for _ in range(100):
        opt.zero_grad()
        value().backward()
        opt.step()
    last = float(value().detach())
    assert last < 0.5 * first, (first, last)
    # and the learned binary codes separate the classes: same label -> closer than other labels
    with torch.no_grad():
        b = torch.sign(torch.tanh(net(x)))
    ham = (b[:, None] != b[None]).float().mean(-1)
    same = labels[:, None] == labels[None]
    assert float(ham[same].mean()) < float(ham[~same].mean())


def test_bit_balance_is_zero_for_balanced_bits_and_one_for_constant_bits():
    balanced = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    assert float(BitBalanceLoss()(balanced)) == 0.0
    assert float(BitBalanceLoss()(torch.ones(4, 8))) == 1.0


def test_objective_rejects_weights_of_unknown_terms():
    with pytest.raises(ValueError, match="unknown terms"):
        HashObjective({"dpsh": PairwiseLikelihoodLoss()}, {"center": 1.0})


def test_speaker_adversary_learns_the_speakers_and_reverses_the_gradient_to_the_codes():
    torch.manual_seed(0)
    x, labels = _tiny_batch()
    speakers = [f"s{i % 3}" for i in range(len(labels))]
    # codes that carry the speaker: the classifier alone learns to name it (its loss decreases)
    u = torch.tanh(x[:, :8] + torch.tensor([[2.0 * (i % 3) - 2.0] * 8 for i in range(len(labels))]))
    adv = SpeakerAdversaryLoss(n_bits=8, max_speakers=4, hidden=16, scale=0.5)
    adv.set_speakers(["s2", "s0", "s1"])
    assert adv.index == {"s2": 0, "s0": 1, "s1": 2}
    opt = torch.optim.Adam(adv.parameters(), lr=1e-2)
    with torch.no_grad():
        first = float(adv(u, labels, speakers))
    for _ in range(100):
        opt.zero_grad()
        adv(u, labels, speakers).backward()
        opt.step()
    with torch.no_grad():
        assert float(adv(u, labels, speakers)) < 0.5 * first
    # the gradient reaching the codes is -scale x the classifier's own
    u1 = u.clone().requires_grad_(True)
    adv(u1, labels, speakers).backward()
    u2 = u.clone().requires_grad_(True)
    target = torch.tensor([adv.index[s] for s in speakers])
    torch.nn.functional.cross_entropy(adv.classifier(u2), target).backward()
    torch.testing.assert_close(u1.grad, -0.5 * u2.grad)


def test_speaker_adversary_ignores_unknown_speakers_and_keeps_its_index_in_the_state_dict():
    adv = SpeakerAdversaryLoss(n_bits=4, max_speakers=3, hidden=4)
    u, labels = torch.zeros(2, 4), torch.zeros(2, dtype=torch.long)
    adv.set_speakers(["a", "b"])
    assert float(adv(u, labels, ["x", "y"])) == 0.0  # validation voices: nothing to learn
    assert float(adv(u, labels, None)) == 0.0
    other = SpeakerAdversaryLoss(n_bits=4, max_speakers=3, hidden=4)
    other.load_state_dict(adv.state_dict())
    assert other.index == {"a": 0, "b": 1}
    with pytest.raises(ValueError, match="max_speakers"):
        adv.set_speakers(["a", "b", "c", "d"])
    obj = HashObjective({"center": CenterLoss(2, 4), "speaker": SpeakerAdversaryLoss(4, 3, 4)})
    obj.set_speakers(["q"])
    total, parts = obj(torch.zeros(2, 4), labels, ["q", "r"])
    assert set(parts) == {"center", "speaker"} and obj.terms["speaker"].index == {"q": 0}


def test_cross_speaker_triplet_takes_its_positives_from_other_voices_only():
    g = torch.Generator().manual_seed(3)
    u = torch.tanh(torch.randn(20, 16, generator=g))
    labels = torch.randint(0, 3, (20,), generator=g)
    speakers = [f"s{int(i)}" for i in torch.randint(0, 4, (20,), generator=g)]
    k = u.shape[1]
    d = (k - u @ u.T) / (2 * k)
    terms = []
    for a in range(20):  # brute force: the farthest same-label item of another voice, the nearest other label
        pos = [float(d[a, p]) for p in range(20) if labels[p] == labels[a] and speakers[p] != speakers[a]]
        neg = [float(d[a, n]) for n in range(20) if labels[n] != labels[a]]
        if pos and neg:
            terms.append(max(0.0, 0.25 + max(pos) - min(neg)))
    got = TripletLoss(cross_speaker=True)(u, labels, speakers=speakers)
    assert abs(float(got) - sum(terms) / len(terms)) < 1e-6
    # a same-voice positive is no positive: one word twice by one speaker plus another word gives the
    # plain triplet a term (the two opposite codes) and the cross-speaker one none
    three, labels3 = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]), torch.tensor([0, 0, 1])
    assert float(TripletLoss()(three, labels3)) > 0.0
    assert float(TripletLoss(cross_speaker=True)(three, labels3, speakers=["a", "a", "b"])) == 0.0
    # the objective passes the speakers to the term that names them
    total, parts = HashObjective({"triplet": TripletLoss(cross_speaker=True)})(u, labels, speakers)
    assert torch.allclose(parts["triplet"], got)
    with pytest.raises(ValueError, match="speakers"):
        TripletLoss(cross_speaker=True)(u, labels)

