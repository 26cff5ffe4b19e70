"""Architectures of papers A, B, C: output convention, shapes, padding exactness, eq. (9) ConvLSTM
step, ReLU20 and a quick overfitting check of every model (small sizes, CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from speechret.models.components import (
    MODELS,
    BiConvLSTMNet,
    BiLSTMBaseline,
    CNN3DBiLSTM,
    CNNBaselineNet,
    CNNHashNet,
    ConvLSTMCell,
    CRNNHashNet,
    LSTMHashNet,
    MaskedBatchNorm,
    ModelOutput,
    ReLU20,
    RNNBaselineNet,
    SVSFrontEnd,
    reverse_padded,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models (conftest.one_torch_thread)



def small_paper_a(cls, **kw):
    base = dict(n_features=8, n_frames=12, hash_dim=32, n_classes=4)
    if cls is LSTMHashNet:
        base.update(lstm_units=16)
    elif cls is RNNBaselineNet:
        base.update(rnn_units=16)
    else:
        base.update(channels=(8, 16))
    base.update(kw)
    return cls(**base)


def small_paper_b(cls, **kw):
    base = dict(in_channels=3, image_size=32, hash_bits=16, n_classes=4, padding="same")
    base["filters"] = (4, 4, 8, 8, 8, 8) if cls is CNNHashNet else (4, 4, 8, 8)
    if cls is CRNNHashNet:
        base["lstm_units"] = 12
    base.update(kw)
    return cls(**base)


def small_svs(cls, **kw):
    base = dict(in_channels=1, height=12, width=16, conv_channels=(4, 6, 8))
    if cls is CNN3DBiLSTM:
        base.update(fc_dim=16, lstm_hidden=12)
    else:
        base.update(convlstm_hidden=6)
    base.update(kw)
    return cls(**base)


# ------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("cls", [LSTMHashNet, CNNBaselineNet, RNNBaselineNet])
def test_paper_a_shapes(cls):
    m = small_paper_a(cls).eval()
    out = m(torch.randn(3, 12, 8))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (3, 4) and out.hash_features.shape == (3, 32) and out.lengths is None
    assert (out.hash_features >= 0).all()  # Dense 384 ReLU
    assert m.output_kind == "classification" and m.hash_method == "paper_a"
    with pytest.raises(ValueError, match="expects"):
        m(torch.randn(3, 13, 8))


def test_paper_a_default_lstm_layout():
    m = LSTMHashNet().eval()
    assert m.lstm.hidden_size == 128 and m.dropout.p == 0.75
    assert m.head.hash_layer.in_features == 401 * 128 and m.head.hash_layer.out_features == 384
    assert m.head.classifier.out_features == 10
    out = m(torch.randn(2, 401, 20))
    assert out.logits.shape == (2, 10) and out.hash_features.shape == (2, 384)


@pytest.mark.parametrize("cls", [CNNHashNet, CRNNHashNet])
def test_paper_b_small_shapes(cls):
    m = small_paper_b(cls).eval()
    out = m(torch.randn(2, 3, 32, 32))
    assert out.logits.shape == (2, 4) and out.hash_features.shape == (2, 16)
    assert out.hash_features.abs().max() <= 1.0  # tanh hash layer, eq. (10)
    assert m.hash_method == "paper_b"


def test_paper_b_cnn_default_size():
    m = CNNHashNet(hash_bits=128).eval()
    convs = [l for l in m.features if isinstance(l, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(l, nn.MaxPool2d) for l in m.features) == 4
    assert sum(isinstance(l, nn.BatchNorm2d) for l in m.features) == 2
    assert m.head.hash_layer.out_features == 128 and m.head.classifier.out_features == 10
    with torch.no_grad():
        out = m(torch.randn(2, 3, 224, 224))
    assert out.logits.shape == (2, 10) and out.hash_features.shape == (2, 128)


def test_paper_b_crnn_default_layout():
    m = CRNNHashNet()
    assert sum(isinstance(l, nn.Conv2d) for l in m.features) == 4
    assert sum(isinstance(l, nn.MaxPool2d) for l in m.features) == 4
    assert sum(isinstance(l, nn.BatchNorm2d) for l in m.features) == 3
    assert m.feature_shape == (64, 12, 12) and m.lstm.hidden_size == 128 and m.dropout.p == 0.7
    assert m.head.hash_layer.in_features == 12 * 128


@pytest.mark.parametrize("cls", [CNN3DBiLSTM, BiConvLSTMNet])
def test_paper_c_svs_shapes(cls):
    m = small_svs(cls).eval()
    x = torch.randn(2, 7, 1, 12, 16)
    out = m(x, torch.tensor([7, 4]))
    assert out.logits.shape == (2, 7, 28) and out.hash_features.shape == (2, 7, 27)
    assert out.lengths.tolist() == [7, 4]
    assert torch.equal(out.hash_features, out.logits[..., :27])
    assert (out.logits[1, 4:] == 0).all()
    assert m.blank_index == 27 and m.output_kind == "sequence" and m.hash_method == "paper_c"
    out = m(x)  # lengths default to the full padded length
    assert out.lengths.tolist() == [7, 7]


def test_paper_c_blank_is_other_variant():
    m = small_svs(CNN3DBiLSTM, n_outputs=27).eval()
    out = m(torch.randn(1, 3, 1, 12, 16))
    assert out.logits.shape == (1, 3, 27) and m.blank_index == 26
    assert torch.equal(out.hash_features, out.logits)
    with pytest.raises(ValueError):
        small_svs(CNN3DBiLSTM, n_outputs=30)


def test_svs_front_end_defaults():
    fe = SVSFrontEnd()
    assert fe.output_shape == (96, 9, 19)
    assert len(fe.convs) == 3 and all(c.kernel_size == (3, 3, 3) for c in fe.convs)
    with pytest.raises(ValueError, match="never pools over time"):
        SVSFrontEnd(pool=2)
    m = CNN3DBiLSTM()
    assert m.fc.out_features == 2 * 512 and m.lstm_fwd.hidden_size == 512 and m.out.in_features == 512


def test_bilstm_baseline_shapes():
    m = BiLSTMBaseline(n_features=5, hidden=8, layers=2).eval()
    out = m(torch.randn(3, 9, 5), torch.tensor([9, 2, 5]))
    assert out.logits.shape == (3, 9, 28) and out.hash_features.shape == (3, 9, 27)
    assert (out.logits[1, 2:] == 0).all()
    assert BiLSTMBaseline(n_features=5, hidden=8, combine="concat")(torch.randn(1, 4, 5)).logits.shape == (1, 4, 28)


def test_models_registry():
    assert set(MODELS) >= {"lstm_hash", "cnn_hash", "crnn_hash", "cnn3d_bilstm", "biconvlstm",
                           "bilstm_baseline", "cnn_baseline", "rnn_baseline"}


# ------------------------------------------------------------------------- padding exactness


def _warm_bn(model, x, lengths):
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x, lengths)
    return model.eval()


@pytest.mark.parametrize("cls", [CNN3DBiLSTM, BiConvLSTMNet])
def test_paper_c_outputs_independent_of_batch_padding(cls):
    torch.manual_seed(0)
    m = small_svs(cls)
    short = torch.randn(1, 4, 1, 12, 16)
    long = torch.randn(1, 9, 1, 12, 16)
    _warm_bn(m, long, None)
    with torch.no_grad():
        alone = m(short, torch.tensor([4])).logits
        junk = torch.randn(1, 5, 1, 12, 16) * 3  # padding need not even be zero
        batch = torch.cat([torch.cat([short, junk], dim=1), long])
        both = m(batch, torch.tensor([4, 9])).logits
        long_alone = m(long, torch.tensor([9])).logits
    assert torch.allclose(both[0, :4], alone[0], atol=1e-5)
    assert torch.allclose(both[1], long_alone[0], atol=1e-5)
    # the backward direction starts at the last VALID frame: truncating the short item changes
    # its earlier outputs, which it would not if only the forward direction were used
    with torch.no_grad():
        trunc = m(short[:, :3], torch.tensor([3])).logits
    assert not torch.allclose(trunc[0, :3], alone[0, :3], atol=1e-4)


def test_bilstm_baseline_outputs_independent_of_batch_padding():
    torch.manual_seed(0)
    m = BiLSTMBaseline(n_features=5, hidden=8).eval()
    a, b = torch.randn(1, 3, 5), torch.randn(1, 8, 5)
    with torch.no_grad():
        alone = m(a, torch.tensor([3])).logits
        both = m(torch.cat([torch.cat([a, torch.randn(1, 5, 5)], 1), b]), torch.tensor([3, 8])).logits
    assert torch.allclose(both[0, :3], alone[0], atol=1e-5)


def test_reverse_padded():
    x = torch.arange(10.0).view(2, 5)
    r = reverse_padded(x, torch.tensor([3, 5]))
    assert r.tolist() == [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]]
    assert torch.equal(reverse_padded(r, torch.tensor([3, 5])), x)


def test_masked_batchnorm_ignores_padding():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 2, 2)
    lengths = torch.tensor([5, 2])
    mbn, bn = MaskedBatchNorm(3), nn.BatchNorm3d(3)
    y = mbn(x, lengths)
    valid = torch.cat([x[0:1], x[1:2, :, :2]], dim=2)  # the valid frames only
    ref = bn(valid)
    assert torch.allclose(y[0:1], ref[:, :, :5], atol=1e-5)
    assert torch.allclose(y[1:2, :, :2], ref[:, :, 5:], atol=1e-5)
    assert (y[1, :, 2:] == 0).all()
    assert torch.allclose(mbn.running_mean, bn.running_mean, atol=1e-6)
    assert torch.allclose(mbn.running_var, bn.running_var, atol=1e-5)


# ------------------------------------------------------------------------ eq. (6) and eq. (9)


def test_relu20_clamps():
    x = torch.tensor([-5.0, 0.0, 3.5, 20.0, 25.0, 1e6])
    assert ReLU20()(x).tolist() == [0.0, 0.0, 3.5, 20.0, 20.0, 20.0]


@pytest.mark.parametrize("output_peephole", ["prev", "current"])
def test_convlstm_cell_matches_eq9(output_peephole):
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3, height=4, width=5, kernel_size=3, output_peephole=output_peephole)
    names = {n for n, _ in cell.named_parameters()}
    assert {"w_ci", "w_cf", "w_co"} <= names and cell.w_ci.shape == (3, 4, 5)
    with torch.no_grad():
        for p in (cell.w_ci, cell.w_cf, cell.w_co):
            p.normal_()
    x = torch.randn(2, 2, 4, 5)
    h0, c0 = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    h, c = cell(x, (h0, c0))

    conv = nn.functional.conv2d
    Wx, bx, Wh = cell.conv_x.weight, cell.conv_x.bias, cell.conv_h.weight
    def gate(k):  # W_x* (x) X_t + W_h* (x) H_{t-1} + b_*, gate order i, f, c, o
        s = slice(3 * k, 3 * k + 3)
        return conv(x, Wx[s], bx[s], padding=1) + conv(h0, Wh[s], padding=1)
    I = torch.sigmoid(gate(0) + cell.w_ci * c0)
    F = torch.sigmoid(gate(1) + cell.w_cf * c0)
    C = F * c0 + I * torch.tanh(gate(2))
    O = torch.sigmoid(gate(3) + cell.w_co * (c0 if output_peephole == "prev" else C))
    H = O * torch.tanh(C)
    assert torch.allclose(c, C, atol=1e-6) and torch.allclose(h, H, atol=1e-6)
    # zero initial state when none is given
    h1, c1 = cell(x)
    h2, c2 = cell(x, (torch.zeros_like(h0), torch.zeros_like(c0)))
    assert torch.allclose(h1, h2) and torch.allclose(c1, c2)


def test_convlstm_no_peephole():
    cell = ConvLSTMCell(2, 3, 4, 5, peephole=False)
    assert cell.w_ci is None and cell(torch.randn(1, 2, 4, 5))[0].shape == (1, 3, 4, 5)


# ----------------------------------------------------------------------------- overfit checks


def _overfit_classifier(model, x, y, steps=150, lr=1e-2):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ce = nn.CrossEntropyLoss()
    model.eval()
    with torch.no_grad():
        start = ce(model(x).logits, y).item()
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = ce(model(x).logits, y)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        end = ce(model(x).logits, y).item()
    return start, end


@pytest.mark.parametrize(
    "build,shape",
    [
        (lambda: small_paper_a(LSTMHashNet, dropout=0.2), (8, 12, 8)),
        (lambda: small_paper_a(CNNBaselineNet, dropout=0.2), (8, 12, 8)),
        (lambda: small_paper_a(RNNBaselineNet, dropout=0.2), (8, 12, 8)),
        (lambda: small_paper_b(CNNHashNet), (8, 3, 32, 32)),
        (lambda: small_paper_b(CRNNHashNet, dropout=0.2), (8, 3, 32, 32)),
    ],
    ids=["lstm", "cnn_a", "rnn_a", "cnn_b", "crnn_b"],
)
def test_classifiers_overfit_one_batch(build, shape):
    torch.manual_seed(0)
    model = build()
    x = torch.randn(*shape)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    start, end = _overfit_classifier(model, x, y)
    assert end < start / 10, (start, end)


def _overfit_ctc(model, x, lengths, targets, target_lengths, steps, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ctc = nn.CTCLoss(blank=27, zero_infinity=True)

    def loss_fn():
        out = model(x, lengths)
        logp = out.logits.log_softmax(-1).transpose(0, 1)  # (T, B, C)
        return ctc(logp, targets, out.lengths, target_lengths)

    model.eval()
    with torch.no_grad():
        start = loss_fn().item()
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    with torch.no_grad():
        end = loss_fn().item()
    return start, end


@pytest.mark.parametrize("name", ["cnn3d_bilstm", "biconvlstm", "bilstm_baseline"])
def test_ctc_models_overfit_toy_sequences(name):
    torch.manual_seed(0)
    if name == "bilstm_baseline":
        model = BiLSTMBaseline(n_features=6, hidden=16, layers=1)
        x = torch.randn(2, 10, 6)
    else:
        model = small_svs(CNN3DBiLSTM if name == "cnn3d_bilstm" else BiConvLSTMNet)
        x = torch.randn(2, 10, 1, 12, 16)
    lengths = torch.tensor([10, 8])
    targets = torch.tensor([3, 5, 9, 7, 1, 0])
    target_lengths = torch.tensor([3, 3])
    # CTC first collapses onto the blank, then escapes the plateau; 250 steps leave a wide margin
    start, end = _overfit_ctc(model, x, lengths, targets, target_lengths, steps=250, lr=1e-2)
    assert end < start / 10, (start, end)
