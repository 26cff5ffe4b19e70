"""Paper C (002) §4.3: bidirectional ConvLSTM over the SVS (Fig. 6, eq. 9).

Eq. (9) (ConvLSTM of Shi et al., ref [25]; (x) = convolution, o = Hadamard product)::

    I_t  = sigma(W_xi (x) X_t + W_hi (x) H_{t-1} + W_ci o C_{t-1} + b_i)
    F_t  = sigma(W_xf (x) X_t + W_hf (x) H_{t-1} + W_cf o C_{t-1} + b_f)
    C'_t = tanh (W_xc (x) X_t + W_hc (x) H_{t-1} + b_c)
    C_t  = F_t o C_{t-1} + I_t o C'_t
    O_t  = sigma(W_xo (x) X_t + W_ho (x) H_{t-1} + W_co o C_{t-1} + b_o)
    H_t  = O_t o tanh(C_t)

"As the output from the three-layer 3D CNN does not require flattening and can serve directly as
input to ConvLSTM, the fully connected FC layer before the RNN-LSTM layer is removed. The
configuration for the remaining layers ... aligns with the 3D CNN-BiLSTM model ..., substituting
the original RNN-LSTM layer exclusively with the ConvLSTM unit."

Choices (configurable):

* Output-gate peephole. Paper C's eq. (9) (and its eq. 5) uses W_co o C_{t-1}; Shi et al. [25]
  use W_co o C_t (the freshly updated cell). Default ``output_peephole="prev"`` follows paper C
  literally; ``"current"`` gives Shi et al.
* Peephole weights W_c* are learnable per channel and per position, shape (hidden, h, w), as in
  Shi et al.; initialised to zero (the cell starts as a plain ConvLSTM).
* Bidirectional combination: the analogue of eq. (7), gamma_t = tanh(W5 (x) H_fwd_t +
  W6 (x) H_bwd_t) with bias-free 1x1 convolutions into ``gamma_channels`` maps; then per frame
  optional adaptive average pooling (``head_pool``, default None = keep the map), Flatten and a
  Linear layer to ``n_outputs`` logits (blank last, see :mod:`.cnn3d_bilstm`).
* The backward ConvLSTM runs over each item's reversed valid frames (it starts at the item's
  last valid frame), the forward one is causal, so padding never changes valid outputs.

Speed (issue 13; the maths of eq. 9 is unchanged, ``tests/test_paper_c_speed.py`` checks outputs
and gradients against the literal per-gate, per-step implementation):

* every cell computes W_x* (x) X_t for all four gates in ONE convolution (4 x hidden output
  channels, then chunked i, f, c, o), and :class:`ConvLSTM` does it for ALL frames in one batched
  call before the recurrence; only W_h* (x) H_{t-1} stays inside the loop over time;
* ``fused=True`` (default) runs both directions in ONE loop over time
  (:func:`bidirectional_convlstm`): one convolution gives both directions' input gates, one
  grouped (``groups=2``) convolution per step gives both recurrent terms, one set of element-wise
  ops updates both states, and gamma_t of eq. (7) is one 1x1 convolution over [H_fwd; H_bwd]. The
  step at t = 0 skips W_h* (x) H_{-1} and the peepholes on C_{-1} (both are zero);
  ``fused=False`` keeps the two separate :class:`ConvLSTM` passes (the reference path);
* the state-dict layout is the same in both paths (``fwd.cell.conv_x`` ... ``w6``): the fused
  path concatenates the two cells' weights at each forward, so checkpoints load either way;
* both loops take each frame's input gates with one ``unbind`` (indexing ``xg[:, t]`` per step
  made backward allocate and add a full-size zero gradient per step: O(T^2) memory traffic);
* ``channels_last`` runs the 3D CNN front end in ``torch.channels_last_3d``;
  :meth:`BiConvLSTMNet.compile_parts` compiles the front end and the per-step update
  (``torch.compile``), not the Python loop over a variable number of frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cnn3d_bilstm import SVSFrontEnd
from .common import ModelOutput, check_lengths, mask_time, reverse_padded, reversed_index


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step with Hadamard peepholes, paper C eq. (9).

    ``forward(x: (B, in_channels, h, w), state=(H, C) | None) -> (H_t, C_t)`` each
    ``(B, hidden_channels, h, w)``. The input convolutions W_x* carry the biases b_*; the
    recurrent convolutions W_h* are bias-free. Gate order in the stacked convolutions:
    i, f, c, o. ``input_gates`` / ``step`` split the step so a sequence model can convolve all
    frames' inputs in one batched call.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        height: int,
        width: int,
        kernel_size: int = 3,
        peephole: bool = True,
        output_peephole: str = "prev",
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
        if output_peephole not in ("prev", "current"):
            raise ValueError(f"output_peephole must be 'prev' (paper C eq. 9) or 'current' "
                             f"(Shi et al.), got {output_peephole!r}")
        self.in_channels, self.hidden_channels = int(in_channels), int(hidden_channels)
        self.height, self.width = int(height), int(width)
        self.output_peephole = output_peephole
        pad = kernel_size // 2
        self.conv_x = nn.Conv2d(in_channels, 4 * hidden_channels, kernel_size, padding=pad, bias=True)
        self.conv_h = nn.Conv2d(hidden_channels, 4 * hidden_channels, kernel_size, padding=pad, bias=False)
        self.peephole = bool(peephole)
        if self.peephole:
            shape = (hidden_channels, height, width)
            self.w_ci = nn.Parameter(torch.zeros(shape))
            self.w_cf = nn.Parameter(torch.zeros(shape))
            self.w_co = nn.Parameter(torch.zeros(shape))
        else:
            self.register_parameter("w_ci", None)
            self.register_parameter("w_cf", None)
            self.register_parameter("w_co", None)

    def init_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = x.new_zeros(x.shape[0], self.hidden_channels, self.height, self.width)
        return z, z.clone()

    def input_gates(self, x: Tensor) -> Tensor:
        """W_x* (x) X_t + b_* for all four gates, ``(N, 4 * hidden, h, w)``."""
        return self.conv_x(x)

    def step(self, xg: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One step of eq. (9) from precomputed input gates ``xg``."""
        h_prev, c_prev = state
        g = xg + self.conv_h(h_prev)
        gi, gf, gc, go = g.chunk(4, dim=1)
        if self.peephole:
            gi = gi + self.w_ci * c_prev
            gf = gf + self.w_cf * c_prev
        i = torch.sigmoid(gi)
        f = torch.sigmoid(gf)
        c = f * c_prev + i * torch.tanh(gc)
        if self.peephole:
            go = go + self.w_co * (c_prev if self.output_peephole == "prev" else c)
        o = torch.sigmoid(go)
        h = o * torch.tanh(c)
        return h, c

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if x.shape[1:] != (self.in_channels, self.height, self.width):
            raise ValueError(f"ConvLSTMCell expects (B, {self.in_channels}, {self.height}, "
                             f"{self.width}), got {tuple(x.shape)}")
        if state is None:
            state = self.init_state(x)
        return self.step(self.input_gates(x), state)


class ConvLSTM(nn.Module):
    """A ConvLSTMCell unrolled over the frame axis of ``(B, T, C, h, w)``; returns all H_t.

    Causal: the outputs at ``t`` depend on frames ``<= t`` only, so trailing padding never
    changes the valid outputs (the backward direction is obtained with :func:`reverse_padded`).
    """

    def __init__(self, cell: ConvLSTMCell) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, x: Tensor) -> Tensor:
        b, t = x.shape[:2]
        xg = self.cell.input_gates(x.reshape(b * t, *x.shape[2:])).reshape(b, t, -1, *x.shape[3:])
        state = self.cell.init_state(x[:, 0])
        outs = []
        for g in xg.unbind(1):  # not xg[:, i]: see bidirectional_convlstm
            state = self.cell.step(g, state)
            outs.append(state[0])
        return torch.stack(outs, dim=1)


def _bi_step(g: Tensor, h: Tensor | None, c: Tensor | None, w_h: Tensor, pad: int,
             w_cif: Tensor | None, w_co: Tensor | None, prev_out_peephole: bool) -> tuple[Tensor, Tensor]:
    """One step of eq. (9) for both directions at once.

    ``g (B, 2, 4, hid, h, w)``: the input gates W_x* (x) X_t + b_* of the forward and the
    backward cell; ``h (B, 2 * hid, h, w)`` and ``c (B, 2, hid, h, w)`` the previous states
    (``None`` at t = 0: zero, so W_h* (x) H_{-1} and the peepholes on C_{-1} vanish);
    ``w_h (8 * hid, hid, k, k)`` both cells' W_h* (grouped convolution, ``groups=2``);
    ``w_cif (2, 2, hid, h, w)`` both cells' [W_ci, W_cf]; ``w_co (2, hid, h, w)``.
    """
    if h is not None:
        g = g + F.conv2d(h, w_h, padding=pad, groups=2).view_as(g)
    gi, gf, gc, go = g.unbind(2)
    if h is not None and w_cif is not None:
        gi = gi + w_cif[:, 0] * c
        gf = gf + w_cif[:, 1] * c
    i, f = torch.sigmoid(gi), torch.sigmoid(gf)
    c_new = i * torch.tanh(gc) if c is None else f * c + i * torch.tanh(gc)
    if w_co is not None:
        if not prev_out_peephole:
            go = go + w_co * c_new
        elif c is not None:
            go = go + w_co * c
    h_new = torch.sigmoid(go) * torch.tanh(c_new)
    return h_new.flatten(1, 2), c_new


def _direction_index(lengths: Tensor, t_max: int) -> Tensor:
    """``(B, T, 2)`` frame indices: column 0 the identity (forward), column 1 each item's valid
    frames reversed, padding in place (:func:`reversed_index`)."""
    rev = reversed_index(lengths, t_max)
    return torch.stack([torch.arange(t_max, device=lengths.device).expand_as(rev), rev], dim=2)


def bidirectional_convlstm(fwd: ConvLSTMCell, bwd: ConvLSTMCell, x: Tensor, lengths: Tensor,
                           step: Callable[..., tuple[Tensor, Tensor]] = _bi_step) -> Tensor:
    """Forward and backward ConvLSTM (eq. 9) over ``x (B, T, C, h, w)`` in one loop over time.

    Returns ``(B, T, 2 * hidden, h, w)``: channels ``[:hidden]`` are H_fwd_t, ``[hidden:]`` are
    H_bwd_t, both in the original frame order (the backward cell ran over each item's reversed
    valid frames). The same values as ``ConvLSTM(fwd)(x)`` and
    ``reverse_padded(ConvLSTM(bwd)(reverse_padded(x)))`` up to float rounding.
    """
    b, t_max = x.shape[:2]
    hid, hh, ww = fwd.hidden_channels, fwd.height, fwd.width
    pad = fwd.conv_h.padding[0]
    # input convolutions of every frame, both cells: one convolution with 2 x 4 x hid outputs.
    # A per-frame convolution commutes with reversing the frames, so the backward cell's inputs
    # are convolved in place and its gates reversed afterwards (one gather for both directions).
    w_x = torch.cat([fwd.conv_x.weight, bwd.conv_x.weight])
    b_x = torch.cat([fwd.conv_x.bias, bwd.conv_x.bias])
    xg = F.conv2d(x.reshape(b * t_max, *x.shape[2:]), w_x, b_x, padding=fwd.conv_x.padding)
    xg = xg.reshape(b, t_max, 2, 4, hid, hh, ww)
    idx = _direction_index(lengths, t_max)
    xg = torch.gather(xg, 1, idx.view(b, t_max, 2, 1, 1, 1, 1).expand_as(xg))
    w_h = torch.cat([fwd.conv_h.weight, bwd.conv_h.weight])
    w_cif = w_co = None
    if fwd.peephole:
        w_cif = torch.stack([torch.stack([fwd.w_ci, fwd.w_cf]), torch.stack([bwd.w_ci, bwd.w_cf])])
        w_co = torch.stack([fwd.w_co, bwd.w_co])
    prev = fwd.output_peephole == "prev"
    h = c = None
    outs = []
    # unbind once: indexing xg[:, i] per step would make autograd build a full-size zero
    # gradient for xg at every step (O(T^2) memory traffic in backward)
    for g in xg.unbind(1):
        h, c = step(g, h, c, w_h, pad, w_cif, w_co, prev)
        outs.append(h)
    out = torch.stack(outs, dim=1).view(b, t_max, 2, hid, hh, ww)  # backward half reversed
    out = torch.gather(out, 1, idx.view(b, t_max, 2, 1, 1, 1).expand_as(out))
    return out.view(b, t_max, 2 * hid, hh, ww)


class BiConvLSTMNet(nn.Module):
    """Paper C §4.3 bidirectional ConvLSTM model: :class:`SVSFrontEnd` (no flattening) ->
    forward and backward ConvLSTM over the frames -> gamma_t = tanh(W5 (x) H_fwd + W6 (x) H_bwd)
    -> [adaptive avg pool] -> Flatten -> Linear -> ``n_outputs`` logits per frame.

    ``forward(x: (B, m, C, h, w), lengths: LongTensor[B] | None) -> ModelOutput`` with
    ``logits (B, m, n_outputs)`` (blank last), ``hash_features (B, m, n_classes)`` and
    ``lengths``.

    ``fused`` (default True): both directions in one loop (:func:`bidirectional_convlstm`);
    False: two :class:`ConvLSTM` passes (reference). ``channels_last``: the front end in
    ``torch.channels_last_3d``. Neither changes the maths. The CPU-feasible configuration
    (``conf/experiment/biconvlstm_ctc_cpu.yaml``: 1-channel magnitude SVS at 38 x 77, fewer
    channels) is a documented deviation from paper C's sizes, not part of the paper.
    """

    output_kind = "sequence"
    hash_method = "paper_c"

    def __init__(
        self,
        in_channels: int = 3,
        height: int = 77,
        width: int = 155,
        conv_channels: Sequence[int] = (32, 64, 96),
        kernel_size: int | Sequence[int] = 3,
        pool: int | Sequence[int] = (1, 2, 2),
        convlstm_hidden: int = 64,
        convlstm_kernel: int = 3,
        gamma_channels: int | None = None,
        head_pool: Sequence[int] | None = None,
        n_classes: int = 27,
        n_outputs: int | None = None,
        relu_clip: float = 20.0,
        conv_activation: str = "relu20",
        batch_norm: bool = True,
        peephole: bool = True,
        output_peephole: str = "prev",
        dropout: float = 0.0,
        fused: bool = True,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.n_classes = int(n_classes)
        self.n_outputs = int(n_outputs) if n_outputs is not None else self.n_classes + 1
        if self.n_outputs not in (self.n_classes, self.n_classes + 1):
            raise ValueError(f"n_outputs must be n_classes or n_classes + 1, got {self.n_outputs}")
        self.blank_index = self.n_outputs - 1
        self.fused = bool(fused)
        self._step: Callable[..., tuple[Tensor, Tensor]] = _bi_step
        self.front = SVSFrontEnd(in_channels, height, width, conv_channels, kernel_size, pool,
                                 conv_activation, relu_clip, batch_norm, channels_last)
        c, h, w = self.front.output_shape
        cells = [ConvLSTMCell(c, convlstm_hidden, h, w, convlstm_kernel, peephole, output_peephole)
                 for _ in range(2)]
        self.fwd = ConvLSTM(cells[0])
        self.bwd = ConvLSTM(cells[1])
        g = int(gamma_channels) if gamma_channels is not None else int(convlstm_hidden)
        self.w5 = nn.Conv2d(convlstm_hidden, g, 1, bias=False)
        self.w6 = nn.Conv2d(convlstm_hidden, g, 1, bias=False)
        if head_pool is not None:
            ph, pw = (int(v) for v in head_pool)
            self.head_pool: nn.Module = nn.AdaptiveAvgPool2d((ph, pw))
            h, w = ph, pw
        else:
            self.head_pool = nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(g * h * w, self.n_outputs)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> ModelOutput:
        if x.dim() != 5:
            raise ValueError(f"BiConvLSTMNet expects an SVS (B, m, C, h, w), got {tuple(x.shape)}")
        lengths = check_lengths(lengths, x.shape[0], x.shape[1], x.device)
        f = self.front(x, lengths).transpose(1, 2)  # (B, m, C', h', w')
        b, m = f.shape[:2]
        if self.fused:
            hs = bidirectional_convlstm(self.fwd.cell, self.bwd.cell, f, lengths, self._step)
            # eq. (7) analogue, w5 (x) H_fwd + w6 (x) H_bwd as one 1x1 convolution over [H_fwd; H_bwd]
            w56 = torch.cat([self.w5.weight, self.w6.weight], dim=1)
            gamma = torch.tanh(F.conv2d(hs.reshape(b * m, *hs.shape[2:]), w56))
        else:
            h_fwd = self.fwd(f)
            h_bwd = reverse_padded(self.bwd(reverse_padded(f, lengths)), lengths)
            flat_f = h_fwd.reshape(b * m, *h_fwd.shape[2:])
            flat_b = h_bwd.reshape(b * m, *h_bwd.shape[2:])
            gamma = torch.tanh(self.w5(flat_f) + self.w6(flat_b))
        z = self.dropout(self.head_pool(gamma).reshape(b, m, -1))
        logits = mask_time(self.out(z), lengths)
        return ModelOutput(logits=logits, hash_features=logits[..., : self.n_classes], lengths=lengths)

    def compile_parts(self, **kwargs) -> None:
        """``torch.compile`` what has static structure: the front end (in place, so the
        state-dict keys stay; ``dynamic=True`` as the frame count varies) and the fused per-step
        update (its shapes depend on the batch size only). The Python loop over time stays eager:
        compiling it would unroll, and recompile, for every sequence length.
        :meth:`speechret.models.hash_modules.HashingModule.setup` calls this when ``compile``."""
        self.front.compile(dynamic=True, **kwargs)
        self._step = torch.compile(_bi_step, **kwargs)


__all__ = ["ConvLSTMCell", "ConvLSTM", "BiConvLSTMNet", "bidirectional_convlstm"]
