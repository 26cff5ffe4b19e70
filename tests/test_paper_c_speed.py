"""Issue 13: paper C's models made faster without changing their maths, their CPU-feasible
configurations, and the CTC recipe switches.

Every optimisation is checked against the straightforward implementation kept here (or behind a
flag): outputs and gradients agree to float tolerance. Small sizes, CPU, one thread.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from speechret.models.components import BiConvLSTMNet, CNN3DBiLSTM, ConvLSTM, ConvLSTMCell, MaskedBatchNorm, ReLU20
from speechret.models.components.cnn3d_bilstm import SVSFrontEnd
from speechret.models.components.common import length_mask, mask_time, reverse_padded
from speechret.models.components.conv_lstm import bidirectional_convlstm
from speechret.models.ctc import check_ctc_frames, compact_targets, ctc_required_frames, init_blank_bias
from speechret.models.hash_modules import CTCHashModule

REPO = Path(__file__).resolve().parents[1]
CPU_EXPERIMENTS = ["cnn3d_bilstm_ctc_cpu", "biconvlstm_ctc_cpu"]
CTC_EXPERIMENTS = ["cnn3d_bilstm_ctc", "biconvlstm_ctc", "bilstm_ctc_baseline"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models (conftest.one_torch_thread)


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose("train", overrides=overrides)


def _grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}


def _assert_same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


def _fill_peepholes(*cells: ConvLSTMCell) -> None:
    with torch.no_grad():
        for cell in cells:
            for p in (cell.w_ci, cell.w_cf, cell.w_co):
                p.normal_(0.0, 0.5)


# ------------------------------------------------------------------------- ConvLSTM (eq. 9)
def literal_convlstm(cell: ConvLSTMCell, x: torch.Tensor) -> torch.Tensor:
    """Eq. (9) as written: per frame, per gate, W_x* (x) X_t + W_h* (x) H_{t-1} + W_c* o C + b_*,
    each gate its own convolution (slices of the cell's stacked weights), zero initial state."""
    b, t = x.shape[:2]
    hid, pad = cell.hidden_channels, cell.conv_x.padding
    h = x.new_zeros(b, hid, cell.height, cell.width)
    c = torch.zeros_like(h)
    wx, bx, wh = cell.conv_x.weight, cell.conv_x.bias, cell.conv_h.weight
    outs = []
    for i in range(t):
        def gate(k):  # gate order i, f, c, o
            s = slice(k * hid, (k + 1) * hid)
            return F.conv2d(x[:, i], wx[s], bx[s], padding=pad) + F.conv2d(h, wh[s], padding=pad)
        ig = torch.sigmoid(gate(0) + cell.w_ci * c)
        fg = torch.sigmoid(gate(1) + cell.w_cf * c)
        c_new = fg * c + ig * torch.tanh(gate(2))
        og = torch.sigmoid(gate(3) + cell.w_co * (c if cell.output_peephole == "prev" else c_new))
        h, c = og * torch.tanh(c_new), c_new
        outs.append(h)
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("output_peephole", ["prev", "current"])
def test_batched_input_convs_and_stacked_gates_equal_eq9(output_peephole):
    """All frames' input convolutions in one call, four gates in one convolution (ConvLSTM) ==
    the literal per-frame, per-gate recurrence; outputs and gradients."""
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4, height=5, width=6, output_peephole=output_peephole)
    _fill_peepholes(cell)
    x = torch.randn(2, 6, 3, 5, 6)
    fast = ConvLSTM(cell)(x)
    fast.square().sum().backward()
    g_fast = _grads(cell)
    cell.zero_grad()
    ref = literal_convlstm(cell, x)
    ref.square().sum().backward()
    _assert_same(fast, ref)
    for name, g in _grads(cell).items():
        _assert_same(g_fast[name], g, atol=1e-4)


@pytest.mark.parametrize("peephole,output_peephole", [(True, "prev"), (True, "current"), (False, "prev")])
def test_fused_bidirectional_recurrence_equals_two_passes(peephole, output_peephole):
    """Both directions in one loop (grouped recurrent conv, one gather, skipped t=0 terms) ==
    forward pass + backward pass over the reversed valid frames; padding in the batch."""
    torch.manual_seed(1)
    fwd = ConvLSTMCell(3, 4, 5, 6, peephole=peephole, output_peephole=output_peephole)
    bwd = ConvLSTMCell(3, 4, 5, 6, peephole=peephole, output_peephole=output_peephole)
    if peephole:
        _fill_peepholes(fwd, bwd)
    x = torch.randn(3, 7, 3, 5, 6, requires_grad=True)
    lengths = torch.tensor([7, 3, 5])
    mask = length_mask(lengths, 7)[:, :, None, None, None]
    fused = bidirectional_convlstm(fwd, bwd, x, lengths)
    ref = torch.cat([ConvLSTM(fwd)(x), reverse_padded(ConvLSTM(bwd)(reverse_padded(x, lengths)), lengths)], dim=2)
    _assert_same(fused * mask, ref * mask)
    w = torch.randn_like(ref) * mask
    g_fused = torch.autograd.grad((fused * w).sum(), [x, *fwd.parameters(), *bwd.parameters()])
    g_ref = torch.autograd.grad((ref * w).sum(), [x, *fwd.parameters(), *bwd.parameters()])
    for a, b in zip(g_fused, g_ref):
        _assert_same(a, b, atol=1e-4)


def _small_svs(cls, **kw):
    base = dict(in_channels=2, height=12, width=16, conv_channels=(4, 6, 8))
    base.update(dict(fc_dim=16, lstm_hidden=12) if cls is CNN3DBiLSTM else dict(convlstm_hidden=6))
    base.update(kw)
    return cls(**base)


def _run(model, x, lengths, w):
    out = model(x, lengths).logits
    (out * w).sum().backward()
    return out.detach(), _grads(model)


def _compare_variants(a: nn.Module, b: nn.Module, train: bool = True) -> None:
    torch.manual_seed(2)
    x = torch.randn(3, 8, 2, 12, 16)
    lengths = torch.tensor([8, 5, 2])
    w = torch.randn(3, 8, a.n_outputs)
    a.train(train)
    b.train(train)
    out_a, g_a = _run(a, x, lengths, w)
    out_b, g_b = _run(b, x, lengths, w)
    _assert_same(out_a, out_b)
    assert g_a.keys() == g_b.keys()
    for name in g_a:
        _assert_same(g_a[name], g_b[name], atol=1e-4)


def test_biconvlstm_fused_equals_reference_and_keeps_the_state_dict():
    torch.manual_seed(0)
    fused = _small_svs(BiConvLSTMNet, fused=True)
    for cell in (fused.fwd.cell, fused.bwd.cell):
        _fill_peepholes(cell)
    ref = _small_svs(BiConvLSTMNet, fused=False)
    assert fused.state_dict().keys() == ref.state_dict().keys()  # one layout: checkpoints load either way
    ref.load_state_dict(fused.state_dict())
    _compare_variants(fused, ref)
    _compare_variants(fused, ref, train=False)


@pytest.mark.parametrize("cls", [CNN3DBiLSTM, BiConvLSTMNet])
def test_channels_last_3d_changes_nothing(cls):
    torch.manual_seed(0)
    a = _small_svs(cls, channels_last=True)
    b = _small_svs(cls, channels_last=False)
    b.load_state_dict(a.state_dict())
    _compare_variants(a, b)


def literal_front(front: SVSFrontEnd, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The front end the straightforward way: literal masked BatchNorm (sharing the front's
    parameters), activation, then max-pooling, and the padded frames re-zeroed after every stage."""
    y = mask_time(x.transpose(1, 2), lengths, time_dim=2)
    for conv, norm, act in zip(front.convs, front.norms, front.acts):
        if isinstance(norm, MaskedBatchNorm):
            literal = LiteralMaskedBatchNorm(norm.num_features).train(norm.training)
            literal.weight, literal.bias = norm.weight, norm.bias
            literal.running_mean.copy_(norm.running_mean)
            literal.running_var.copy_(norm.running_var)
            norm = literal
        y = norm(conv(y), lengths)
        y = mask_time(front.pool(act(y)), lengths, time_dim=2)
    return y


@pytest.mark.parametrize("activation", ["relu20", "relu", "tanh", "elu", "identity"])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_front_end_equals_the_literal_stages(activation, batch_norm):
    """Pooling before the activation, the fast masked BatchNorm and the skipped masks change
    neither the outputs nor any gradient."""
    torch.manual_seed(0)
    front = SVSFrontEnd(2, 12, 16, (4, 6), activation=activation, batch_norm=batch_norm)
    with torch.no_grad():
        for norm in front.norms:
            if isinstance(norm, MaskedBatchNorm):  # wide enough to reach ReLU20's clip
                norm.weight.uniform_(-15.0, 15.0)
                norm.bias.normal_()
        for conv in front.convs:
            conv.weight.mul_(8.0)
    x = torch.randn(2, 5, 2, 12, 16).requires_grad_(True)
    lengths = torch.tensor([5, 3])
    params = [x, *front.parameters()]
    for train in (True, False):
        front.train(train)
        fast, ref = front(x, lengths), literal_front(front, x, lengths)
        assert (fast[1, :, 3:] == 0).all()
        _assert_same(fast, ref)
        w = torch.randn_like(fast)
        g_fast = torch.autograd.grad((fast * w).sum(), params)
        g_ref = torch.autograd.grad((ref * w).sum(), params)
        for a, b in zip(g_fast, g_ref):
            _assert_same(a, b, atol=1e-3 * max(1.0, float(b.abs().max())))
    if activation == "relu20":
        assert bool((ref == 20.0).any()) and bool((ref == 0.0).any())  # both ends of the clip reached


class LiteralMaskedBatchNorm(MaskedBatchNorm):
    """The masked BatchNorm as first written: masked sums over the full tensor, then
    (x - mean) / sqrt(var + eps) * weight + bias, then the mask."""

    def forward(self, x, lengths):
        shape = [1, self.num_features] + [1] * (x.dim() - 2)
        mask = length_mask(lengths, x.shape[2]).to(x.dtype)
        mask = mask.view(x.shape[0], 1, x.shape[2], *([1] * (x.dim() - 3)))
        if self.training:
            dims = [0] + list(range(2, x.dim()))
            n = mask.sum() * math.prod(x.shape[3:])
            mean = (x * mask).sum(dim=dims) / n
            var = (((x - mean.view(shape)) ** 2) * mask).sum(dim=dims) / n
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / torch.clamp(n - 1, min=1.0), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return (y * self.weight.view(shape) + self.bias.view(shape)) * mask


def _fast_and_literal_bn(cls: type = MaskedBatchNorm) -> tuple[MaskedBatchNorm, LiteralMaskedBatchNorm]:
    """A ``cls`` norm with random affine parameters and the literal formula with the same state."""
    torch.manual_seed(0)
    fast, ref = cls(4), LiteralMaskedBatchNorm(4)
    with torch.no_grad():
        fast.weight.normal_()
        fast.bias.normal_()
    ref.load_state_dict(fast.state_dict())
    return fast, ref


def _check_bn_against_literal(fast, ref, x, lengths, to_ref=lambda t: t, stats=("running_mean", "running_var"),
                              check=None) -> None:
    """Train and eval mode: ``fast(x)`` equals ``to_ref(ref(to_ref(x)))`` (``to_ref`` maps x into the
    literal norm's (B, C, T, ...) layout and back), and so do the gradients of x, weight and bias
    and the running statistics ``stats``; ``check(y_fast)`` adds an assertion on the output."""
    for train in (True, False):
        fast.train(train)
        ref.train(train)
        w = torch.randn(*x.shape)
        y_fast, y_ref = fast(x, lengths), to_ref(ref(to_ref(x), lengths))
        if check is not None:
            check(y_fast)
        _assert_same(y_fast, y_ref)
        g_fast = torch.autograd.grad((y_fast * w).sum(), [x, fast.weight, fast.bias])
        g_ref = torch.autograd.grad((y_ref * w).sum(), [x, ref.weight, ref.bias])
        for a, b in zip(g_fast, g_ref):
            _assert_same(a, b, atol=1e-4)
        for name in stats:
            _assert_same(getattr(fast, name), getattr(ref, name))


@pytest.mark.parametrize("shape", [(3, 4, 6, 5, 7), (3, 4, 6), (3, 4, 6, 5), "transposed"])
def test_masked_batchnorm_equals_literal_formula(shape):
    """Outputs, gradients and running statistics; "transposed": a (B, C, T, F) view of a (B, C,
    F, T) tensor (not contiguous)."""
    fast, ref = _fast_and_literal_bn()
    if shape == "transposed":
        x = (torch.randn(3, 4, 5, 6) * 3 + 1).transpose(2, 3).requires_grad_(True)
        assert not x.is_contiguous()
    else:
        x = (torch.randn(*shape) * 3 + 1).requires_grad_(True)
    _check_bn_against_literal(fast, ref, x, torch.tensor([6, 2, 4]))


def test_frame_batchnorm_normalises_over_frames_on_the_last_axis():
    """resnet_hash's FrameBatchNorm (frame_dim = -1) on (B, C, F, T) equals the literal formula
    on the (B, C, T, F) transpose: outputs, gradients, running statistics."""
    from speechret.models.components.resnet_hash import FrameBatchNorm

    fast, ref = _fast_and_literal_bn(FrameBatchNorm)
    x = (torch.randn(3, 4, 5, 6) * 3 + 1).requires_grad_(True)  # (B, C, F, T)

    def padded_frames_are_zero(y):
        assert (y[1, :, :, 2:] == 0).all()

    _check_bn_against_literal(fast, ref, x, torch.tensor([6, 2, 4]), to_ref=lambda t: t.transpose(2, 3),
                              stats=("running_var",), check=padded_frames_are_zero)


def test_masked_batchnorm_keeps_float32_precision_under_a_large_mean():
    """A mean 1000x the spread: the float32 module stays within float32 rounding of the literal
    formula in float64, outputs and gradients (a sum of squares differenced in float32 would be
    off by ~0.1 here)."""
    torch.manual_seed(0)
    x = torch.randn(3, 4, 6, 20, 30) + 1000.0
    lengths = torch.tensor([6, 2, 4])
    fast, ref = MaskedBatchNorm(4), LiteralMaskedBatchNorm(4).double()
    w = torch.randn_like(x)
    xf, xd = x.clone().requires_grad_(True), x.double().requires_grad_(True)
    yf, yd = fast(xf, lengths), ref(xd, lengths)
    _assert_same(yf, yd.float(), atol=2e-4, rtol=0)
    gf = torch.autograd.grad((yf * w).sum(), [xf, fast.weight, fast.bias])
    gd = torch.autograd.grad((yd * w.double()).sum(), [xd, ref.weight, ref.bias])
    for a, b in zip(gf, gd):
        _assert_same(a, b.float(), atol=2e-4 * max(1.0, float(b.abs().max())), rtol=0)
    _assert_same(fast.running_var, ref.running_var.float(), atol=1e-5, rtol=1e-4)


def test_relu20_hardtanh_equals_clamp():
    x = (torch.randn(1000) * 15).requires_grad_(True)
    y = ReLU20()(x)
    assert torch.equal(y, torch.clamp(x, 0.0, 20.0))
    g = torch.autograd.grad(y.sum(), x)[0]
    assert torch.equal(g, ((x > 0) & (x < 20)).float())  # no input sits exactly on 0 or 20


@pytest.mark.parametrize("cls", [CNN3DBiLSTM, BiConvLSTMNet])
def test_compile_parts_keeps_outputs_and_state_dict(cls):
    """compile=True covers the SVS nets (front end, fused step) without renaming parameters;
    the cheap 'eager' backend checks the tracing here, inductor is the default in training."""
    torch.manual_seed(0)
    net = _small_svs(cls).eval()
    x = torch.randn(2, 5, 2, 12, 16)
    lengths = torch.tensor([5, 3])
    with torch.no_grad():
        before = net(x, lengths).logits
    keys = set(net.state_dict())
    torch._dynamo.reset()
    net.compile_parts(backend="eager")
    with torch.no_grad():
        after = net(x, lengths).logits
    assert set(net.state_dict()) == keys
    _assert_same(before, after)


def test_module_compile_flag_reaches_the_svs_nets(monkeypatch):
    called = []
    net = _small_svs(BiConvLSTMNet, n_outputs=27)
    monkeypatch.setattr(net, "compile_parts", lambda **kw: called.append(kw))
    CTCHashModule(net, compile=True).setup("fit")
    assert called == [{}]


# ---------------------------------------------------------------------- CPU-feasible configs
@pytest.mark.parametrize("experiment", CPU_EXPERIMENTS)
def test_cpu_config_builds_runs_and_fits_the_budget(experiment):
    """1-channel magnitude SVS at 38 x 77, fewer channels: shapes come from the features config,
    a forward/backward runs, and a training step costs well under 0.1 GFLOP per SVS frame."""
    cfg = compose_cfg([f"experiment={experiment}", "paths.output_dir=/tmp/x"])
    assert cfg.features.mode == "magnitude" and (cfg.features.height, cfg.features.width) == (38, 77)
    assert cfg.model.net.height == 38 and cfg.model.net.width == 77 and cfg.model.net.in_channels == 1
    assert cfg.data.cache_features and cfg.augment.wave is None and cfg.augment.spec is None
    features = instantiate(cfg.features)
    module = instantiate(cfg.model)
    wave = torch.randn(2, 16000 + 8000) * 0.1
    feats, flen = features(wave, torch.tensor([24000, 16000]))
    assert feats.shape[2:] == (1, 38, 77)
    module.train()
    with FlopCounterMode(display=False) as fc:
        out = module(feats, flen)
        out.logits.square().sum().backward()
    assert out.logits.shape[:2] == feats.shape[:2] and all(p.grad is not None for p in module.parameters())
    per_frame = fc.get_total_flops() / feats.shape[0] / feats.shape[1]
    paper = compose_cfg([f"experiment={experiment.removesuffix('_cpu')}", "paths.output_dir=/tmp/x"])
    assert paper.model.net.conv_channels == [32, 64, 96] and paper.features.mode == "rgb"
    assert per_frame < 0.1e9, per_frame / 1e9


# ------------------------------------------------------------------------- CTC recipe switches
def _baseline(n_outputs=27):
    from speechret.models.components import BiLSTMBaseline
    return BiLSTMBaseline(n_features=8, hidden=8, layers=1, n_outputs=n_outputs)


def test_blank_bias_init():
    m = CTCHashModule(_baseline(27), blank_bias=-3.0)
    assert m.net.out.bias[26].item() == -3.0
    m = CTCHashModule(_baseline(28), blank_prior=0.9)
    bias = m.net.out.bias.detach()
    assert bias[27].item() == pytest.approx(math.log(0.9 * 27 / 0.1)) and (bias[:27] == 0).all()
    p_blank = torch.softmax(bias, 0)[27].item()
    assert p_blank == pytest.approx(0.9)
    assert CTCHashModule(_baseline(27)).net.out.bias[26].abs().item() < 1  # off by default
    with pytest.raises(ValueError, match="exactly one"):
        init_blank_bias(nn.Linear(4, 3), 2, bias=1.0, prior=0.5)
    with pytest.raises(ValueError, match="prior"):
        CTCHashModule(_baseline(27), blank_prior=1.5)
    cfg = compose_cfg(["experiment=cnn3d_bilstm_ctc_cpu", "model.blank_prior=0.8", "paths.output_dir=/tmp/x"])
    module = instantiate(cfg.model)
    assert torch.softmax(module.net.out.bias.detach(), 0)[26].item() == pytest.approx(0.8)


def test_required_frames_count_labels_and_repeats():
    t = torch.tensor([[1, 26, 1, -1], [2, 2, 3, 3], [5, -1, -1, -1]])
    compact, lengths = compact_targets(t, drop=26)  # "other" is the blank: removed from targets
    assert compact.tolist() == [[1, 1, -1, -1], [2, 2, 3, 3], [5, -1, -1, -1]] and lengths.tolist() == [2, 4, 1]
    assert ctc_required_frames(compact, lengths).tolist() == [3, 6, 1]  # "b _ b" needs 3 frames


def test_frame_check_names_the_too_short_item(caplog):
    module = CTCHashModule(_baseline(27))
    x = torch.randn(2, 6, 8)
    batch = {"features": x, "feature_lengths": torch.tensor([6, 3]), "ids": ["spk1_long", "spk2_short"],
             "targets": torch.tensor([[0, 1, -1], [4, 4, 4]]), "target_lengths": torch.tensor([2, 3])}
    out = module(x, batch["feature_lengths"])
    with pytest.raises(ValueError, match=r"spk2_short: T=3 frames, L \+ r = 5 \(L=3 labels, r=2 repeats\)"):
        module.compute_loss(out, batch)
    assert "spk1_long" not in str(pytest.raises(ValueError, module.compute_loss, out, batch).value)
    warn = CTCHashModule(_baseline(27), frame_check="warn")
    with caplog.at_level(logging.WARNING):
        loss = warn.compute_loss(out, batch)  # zero_infinity zeroes the infeasible item
    assert torch.isfinite(loss) and "spk2_short" in caplog.text
    assert torch.isfinite(CTCHashModule(_baseline(27), frame_check="off").compute_loss(out, batch))
    # tight but feasible items are logged (once per module), not refused
    n_bad, n_tight = check_ctc_frames(torch.tensor([4, 20]), torch.tensor([[1, 2, 3], [1, 2, 3]]),
                                      torch.tensor([3, 3]), ["a", "b"])
    assert (n_bad, n_tight) == (0, 1)


def test_recipe_speechret_refuses_ctc_clearly():
    cfg = compose_cfg(["experiment=bilstm_ctc_baseline", "recipe=speechret", "paths.output_dir=/tmp/x"])
    with pytest.raises(InstantiationException, match="recipe=speechret_ctc"):
        instantiate(cfg.model)


@pytest.mark.parametrize("experiment", CTC_EXPERIMENTS + CPU_EXPERIMENTS)
def test_ctc_recipe_composes(experiment):
    plain = compose_cfg([f"experiment={experiment}", "paths.output_dir=/tmp/x"])
    cfg = compose_cfg([f"experiment={experiment}", "recipe=speechret_ctc", "paths.output_dir=/tmp/x"])
    assert cfg.model.net == plain.model.net and cfg.model.optimizer == plain.model.optimizer
    assert cfg.model.scheduler._target_.endswith("OneCycleLR") and cfg.model.scheduler_interval == "step"
    assert cfg.model.scheduler.max_lr == plain.model.optimizer.lr and cfg.model.scheduler.pct_start > 0
    assert "label_smoothing" not in cfg.model and cfg.frontend is not None and cfg.augment.wave is not None
    svs = "svs" in cfg.features._target_.lower()
    assert cfg.augment.spec.time_mask_param == (4 if svs else 20)


@pytest.mark.parametrize("experiment", CTC_EXPERIMENTS)
def test_ctc_recipe_runs_with_debug(experiment, tiny_sentences, tmp_path):
    from speechret.apps.train import build_datamodule, train
    from speechret.data.dataset import CachedFeatureDataset

    overrides = [f"experiment={experiment}", "recipe=speechret_ctc", "debug=default", "data=manifest",
                 f"data.root={tiny_sentences / 'manifest.csv'}", "data.batch_size=2", "data.target=ctc",
                 "data.val_fraction=0.25", "data.test_fraction=0.25", f"paths.output_dir={tmp_path}"]
    if experiment != "bilstm_ctc_baseline":  # the paper sizes are slow on CPU: small nets, same code
        overrides += ["model.net.conv_channels=[2,2,2]", "features.height=16", "features.width=16"]
        overrides += ["model.net.fc_dim=8", "model.net.lstm_hidden=8"] if "cnn3d" in experiment \
            else ["model.net.convlstm_hidden=4"]
    cfg = compose_cfg(overrides)
    dm = build_datamodule(cfg)
    dm.setup()
    assert dm.augments_train and not isinstance(dm.datasets["train"], CachedFeatureDataset)
    if cfg.data.cache_features:  # the SVS experiments: val/test still cached under augmentation
        assert isinstance(dm.datasets["val"], CachedFeatureDataset)
    summary = train(cfg)
    assert np.isfinite(summary["metrics"]["train/loss"])


def test_multi_word_rows_train_a_ctc_model_and_a_classification_model_refuses_them(tiny_sentences, tiny_corpus, tmp_path):
    """``augment=words`` after the CTC recipe re-packs training batches into multi-word rows
    (:class:`speechret.concat.ConcatWords`) and the model trains on them; a classification model has
    no CTC targets to join, and the run stops with a message naming augment.concat."""
    from speechret.apps.train import build_datamodule, train
    from speechret.concat import ConcatWords

    overrides = ["experiment=bilstm_ctc_baseline", "recipe=speechret_ctc", "augment=words", "debug=default",
                 "data=manifest", f"data.root={tiny_sentences / 'manifest.csv'}", "data.batch_size=4",
                 "data.target=ctc", "data.val_fraction=0.25", "data.test_fraction=0.25", f"paths.output_dir={tmp_path}"]
    cfg = compose_cfg(overrides)
    dm = build_datamodule(cfg)
    assert isinstance(dm.concat_augment, ConcatWords) and dm.augments_train
    summary = train(cfg)
    assert np.isfinite(summary["metrics"]["train/loss"])
    cls = compose_cfg(["experiment=lstm_hash", "augment=words", "debug=default", f"data.root={tiny_corpus}",
                       f"paths.output_dir={tmp_path / 'cls'}"])
    with pytest.raises(InstantiationException, match="augment.concat.*data.target=class"):
        train(cls)  # the DataModule refuses it before any training (Hydra wraps its ConfigError)


def test_svs_features_cached_by_default_without_augmentation(tiny_sentences, tmp_path):
    from speechret.apps.train import build_datamodule
    from speechret.data.dataset import CachedFeatureDataset

    cfg = compose_cfg(["experiment=cnn3d_bilstm_ctc_cpu", "data=manifest",
                       f"data.root={tiny_sentences / 'manifest.csv'}", "data.target=ctc", "data.val_fraction=0.25", "data.test_fraction=0.25",
                       f"paths.output_dir={tmp_path}"])
    dm = build_datamodule(cfg)
    dm.setup()
    assert not dm.augments_train
    assert all(isinstance(dm.datasets[s], CachedFeatureDataset) for s in ("train", "val", "test"))


# ------------------------------------------------------------------------------ the profiler
def test_train_profile_runs_end_to_end(tiny_sentences, capsys):
    """bench/train_profile.py (the measurement of issue 13) on a tiny setting: one step, the
    summary row has FLOPs (the LSTMs included), an achieved rate and a distance from the floor."""
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    import train_profile

    rows = train_profile.run(["cnn3d_bilstm_ctc_cpu"], steps=1, batch_size=2, repeats=1, top=5, show_table=True,
                             overrides=["data=manifest", f"data.root={tiny_sentences / 'manifest.csv'}",
                                        "data.target=ctc", "data.split=random"])
    r = rows[0]
    assert r["gflop"] > 0 and 0 < r["conv_share"] < 1 and r["ratio"] > 0 and r["step_s"] > 0
    assert {"features", "forward", "backward", "optimizer", "layer:front", "layer:lstm_fwd"} <= set(r["phases"])
    out = capsys.readouterr().out
    assert "step/floor" in out and "dense conv3d" in out and "cnn3d_bilstm_ctc_cpu" in out


def test_throughput_times_an_experiment_with_a_step_schedule(tiny_sentences):
    """bench/train_throughput.py times every conf/experiment, speechret_hash included, whose
    one-cycle schedule needs a Trainer's step count: the benchmark steps the optimizer alone
    (HashingModule.build_optimizer; it raised "not attached to a Trainer" before)."""
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    import train_throughput

    assert "speechret_hash" in train_throughput.ALL and "cnn3d_bilstm_ctc" in train_throughput.ALL
    r = train_throughput.measure("speechret_hash", "cpu", "32", batch_size=2, steps=1, threads=None,
                                 overrides=["data=manifest", f"data.root={tiny_sentences / 'manifest.csv'}",
                                            "data.split=random"])
    assert r["experiment"] == "speechret_hash" and r["steps"] == 1 and r["samples_s"] > 0
