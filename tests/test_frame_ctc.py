"""The auxiliary CTC target (models.losses.FrameCTCLoss) on ResNetHashNet's per-frame head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from speechret.models.components.resnet_hash import ResNetHashNet
from speechret.models.losses import CenterLoss, FrameCTCLoss, HashObjective

KW = dict(n_mels=32, n_classes=4, hash_bits=16, channels=(8, 16), embed_dim=16, cmvn=True, masked_norm=True,
          pool_freq=False, stem_stride=(1, 2))


def _batch(seed: int = 0):
    """Four items, two words each with its own pair of initials; the third item has one target,
    the fourth none (a word without pinyin)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 96, 32, generator=g)
    lengths = torch.tensor([96, 90, 80, 72, 96, 88, 70, 64])
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    pairs = {0: [16, 18], 1: [21, 21], 2: [14, -1], 3: [-1, -1]}  # sh z / y y / zh / none
    targets = torch.tensor([pairs[int(c)] for c in labels])
    target_lengths = (targets >= 0).sum(1)
    return x, lengths, labels, targets, target_lengths


def test_the_frame_head_learns_its_targets_on_a_tiny_batch():
    """The CTC term decreases (to under a third) and greedy decoding of the head then gives each
    item's initials, repeated ones included (y y needs a blank between)."""
    torch.manual_seed(0)
    x, lengths, labels, targets, target_lengths = _batch()
    net = ResNetHashNet(**KW, frame_classes=27).train()
    term = FrameCTCLoss()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def value():
        out = net(x, lengths)
        return term(out.hash_features, labels, output=out, targets=targets, target_lengths=target_lengths)

    first = float(value().detach())
    for _ in range(150):
        opt.zero_grad()
        value().backward()
        opt.step()
    assert float(value().detach()) < first / 3
    with torch.no_grad():  # the head runs in training mode only
        out = net(x, lengths)
    best = out.frame_logits.argmax(-1)
    for i in range(len(x)):
        path = best[i, : int(out.frame_lengths[i])].tolist()
        decoded = [p for k, p in enumerate(path) if p != 27 and (k == 0 or p != path[k - 1])]
        assert decoded == targets[i, : int(target_lengths[i])].tolist(), (i, path)


def test_it_is_the_mean_of_each_items_ctc_over_its_target_length_and_skips_items_without_targets():
    x, lengths, labels, targets, target_lengths = _batch(1)
    net = ResNetHashNet(**KW, frame_classes=27).train()
    out = net(x, lengths)
    got = FrameCTCLoss()(out.hash_features, labels, output=out, targets=targets, target_lengths=target_lengths)
    logp = out.frame_logits.float().log_softmax(-1)
    each = [F.ctc_loss(logp[i, : int(out.frame_lengths[i])][:, None], targets[i, : int(target_lengths[i])][None],
                       out.frame_lengths[i : i + 1], target_lengths[i : i + 1], blank=27, reduction="sum")
            / target_lengths[i] for i in range(len(x)) if target_lengths[i] > 0]
    torch.testing.assert_close(got, torch.stack(each).mean())
    none = torch.zeros_like(target_lengths)
    zero = FrameCTCLoss()(out.hash_features, labels, output=out, targets=targets, target_lengths=none)
    assert float(zero.detach()) == 0


def test_the_head_is_training_only_and_leaves_the_codes_alone():
    """In eval the net with a frame head returns no frame outputs, and the same weights without
    the head give the same codes; an objective with the term adds nothing there."""
    x, lengths, labels, targets, target_lengths = _batch(2)
    torch.manual_seed(0)
    with_head = ResNetHashNet(**KW, frame_classes=27).eval()
    plain = ResNetHashNet(**KW).eval()
    missing, unexpected = plain.load_state_dict(with_head.state_dict(), strict=False)
    assert not missing and all(k.startswith("frame_head.") for k in unexpected) and unexpected
    a, b = with_head(x, lengths), plain(x, lengths)
    assert a.frame_logits is None and a.frame_lengths is None
    assert torch.equal(a.hash_features, b.hash_features)
    obj = HashObjective({"center": CenterLoss(4, 16), "ctc": FrameCTCLoss()})
    total, parts = obj(a.hash_features, labels, None, output=a, targets=targets, target_lengths=target_lengths)
    assert float(parts["ctc"]) == 0 and torch.equal(total, parts["center"])


def test_bad_settings_name_themselves():
    x, lengths, labels, targets, target_lengths = _batch()
    with pytest.raises(ValueError, match="frame_classes"):
        ResNetHashNet(**KW, frame_classes=-1)
    net = ResNetHashNet(**KW, frame_classes=10).train()  # the targets reach class 21
    out = net(x, lengths)
    with pytest.raises(ValueError, match="frame_classes"):
        FrameCTCLoss()(out.hash_features, labels, output=out, targets=targets, target_lengths=target_lengths)


def test_the_model_config_switch_builds_it(build_speechret_hash):
    """``model/auxiliary=initials_ctc`` gives speechret_hash's net a 27-class (+ blank) frame head and
    its objective the CTC term; the default (none) neither.  A training batch of the tiny corpus
    gets a finite loss whose gradient reaches the head."""
    plain = build_speechret_hash()[0]
    assert plain.net.frame_head is None and "ctc" not in plain.hash_objective.terms
    model, dm, _ = build_speechret_hash("model/auxiliary=initials_ctc")
    assert model.net.frame_head.out_features == 28 and isinstance(model.hash_objective.terms["ctc"], FrameCTCLoss)
    assert model.hash_objective.weights["ctc"] == 0.2
    batch = dm.prepare_batch(next(iter(dm.train_dataloader())), augment=True)
    model.train()
    out = model(batch["features"], batch.get("feature_lengths"))
    assert out.frame_logits is not None and bool((batch["target_lengths"] > 0).all())
    loss = model.compute_loss(out, batch)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.net.frame_head.weight.grad is not None and float(model.net.frame_head.weight.grad.abs().sum()) > 0
