"""Paper C (002): 3D CNN-BiLSTM over the time-sequence speech visualization (SVS), §4.2, Fig. 4-5.

"The proposed 3D CNN-BiLSTM deep learning model employs three 3D convolutional layers to extract
spatiotemporal features from the visualized sequence of speech. A fully connected layer then
temporally unrolls these features for BiLSTM-based temporal features learning ... Dimensionality
reduction pooling layers after each convolution stage ... The output of the fully connected layer
is 2x512, and the activation functions are all ReLU20 functions (eq. 6) ... Divide the output of
the fully connected layer into two sets of chi and chi', and send them to two LSTM units for
forward propagation and backward propagation (eq. 7) ... Use the Softmax classification layer to
map 512 input features to label set C. The loss function applies ... CTC (eq. 8)."

Input: SVS ``(B, m, C, h, w)`` (C = 3 RGB or 1, h x w = 77 x 155 on THCHS-30), ``lengths[B]`` the
number of valid frames m of each item. Output: per-frame logits; ``lengths`` are unchanged.

Choices where paper C is silent or ambiguous (all configurable):

* 3D conv sizes are not given: ``conv_channels=(32, 64, 96)``, kernels 3x3x3 with padding 1
  (time, height, width). Pooling is 1x2x2: over space only, NOT over time, so the sequence of m
  frames keeps its length (CTC needs one output per SVS frame, and §4.4 hashes "the output of
  speech s with m frames"). 77x155 -> 38x77 -> 19x38 -> 9x19.
* "activation functions are all ReLU20": read as every non-recurrent layer (conv and FC), as in
  Deep Speech, whose clipped ReLU(20) + FC + BiRNN + CTC stack this model follows
  (``conv_activation="relu20"``).
* BatchNorm after each 3D conv (``batch_norm=True``, not in the text); it is a masked BatchNorm
  whose statistics skip padded frames.
* Padding exactness: after every conv stage the frames ``t >= lengths[b]`` are zeroed, so the
  temporal zero-padding each conv sees is the same whether or not longer items share the batch;
  the backward LSTM runs over each item's reversed VALID part (it starts at the last valid
  frame). An item's outputs are therefore independent of its batch (up to float rounding).
* Eq. (7): gamma_i = tanh(w5 h_fwd_i + w6 h_bwd_i) with bias-free linear maps w5, w6 into
  ``fc_dim`` (= 512, "map 512 input features to label set C"); then Linear -> ``n_outputs``.
* The CTC blank. Paper C's label set C has 27 classes (26 initials / zero-initial vowels + c_27
  "other"). We output ``n_outputs = n_classes + 1 = 28`` logits with the blank LAST (index 27),
  so the pronunciation classes keep their indices 0..26 (index 26 = "other") and
  ``hash_features`` = logits[..., :27]. Paper C was implemented in TensorFlow 1.12, whose
  ``ctc_loss`` uses the last class as the blank; if its softmax had only 27 outputs, the
  "other" class WAS the blank. That reading is available with ``n_outputs=n_classes`` (the
  caller then uses blank index 26 and ``hash_features`` = all 27 logits).

Speed (issue 13; none of it changes the maths, ``tests/test_paper_c_speed.py`` checks it):
``channels_last=True`` runs the 3D convolutions in ``torch.channels_last_3d`` (oneDNN / cuDNN
prefer it); with batch normalisation on, the masking after each pooling is skipped, because the
masked BatchNorm already zeroes the padded frames and every activation and max-pooling keeps a
zero frame zero; :meth:`CNN3DBiLSTM.compile_parts` compiles the front end for ``compile=True``.
The CPU-feasible configuration (``conf/experiment/cnn3d_bilstm_ctc_cpu.yaml``: 1-channel magnitude
SVS at 38 x 77, channels 8/16/32, FC 2 x 256, LSTM 256) is a documented deviation from paper C's
sizes so the model trains on 2 CPU cores; the paper configuration is the default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .common import (
    MaskedBatchNorm,
    ModelOutput,
    ReLU20,
    check_lengths,
    conv_out,
    make_activation,
    mask_time,
    reverse_padded,
)


def _triple(v: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(v, int):
        return (v, v, v)
    a, b, c = (int(x) for x in v)
    return (a, b, c)


class _NoNorm(nn.Module):
    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return x


class SVSFrontEnd(nn.Module):
    """The three-layer 3D CNN shared by :class:`CNN3DBiLSTM` and
    :class:`~speechret.models.components.conv_lstm.BiConvLSTMNet` (paper C §4.2-4.3).

    Each stage: Conv3d(kernel (kt, kh, kw), 'same' padding) -> [masked BatchNorm] -> activation
    -> MaxPool3d(pool) -> zero the padded frames (computed as pooling, then the activation: the
    same function, since every activation here is monotone non-decreasing). ``pool[0]`` must be 1
    (the frame axis is never pooled). ``forward(x: (B, m, C, h, w), lengths) -> (B, C', m, h',
    w')`` channel-first (contiguous); ``self.output_shape == (C', h', w')``. ``channels_last``: the
    stages run in ``torch.channels_last_3d``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        height: int = 77,
        width: int = 155,
        conv_channels: Sequence[int] = (32, 64, 96),
        kernel_size: int | Sequence[int] = 3,
        pool: int | Sequence[int] = (1, 2, 2),
        activation: str = "relu20",
        relu_clip: float = 20.0,
        batch_norm: bool = True,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.channels_last = bool(channels_last)
        # the masked BatchNorm zeroes padded frames and act(0) = 0 for every activation of
        # make_activation (relu20, relu, tanh, elu, identity), max-pool of zeros is zero: the
        # mask after each stage is then redundant (without BatchNorm the conv bias needs it)
        self._mask_after_stage = not batch_norm
        kt, kh, kw = _triple(kernel_size)
        pt, ph, pw = _triple(pool)
        if pt != 1:
            raise ValueError("SVSFrontEnd never pools over time (pool[0] must be 1): CTC needs one "
                             "output per SVS frame")
        if kt % 2 != 1 or kh % 2 != 1 or kw % 2 != 1:
            raise ValueError(f"kernel sizes must be odd ('same' padding), got {(kt, kh, kw)}")
        self.in_channels, self.height, self.width = int(in_channels), int(height), int(width)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.acts = nn.ModuleList()
        self.pool = nn.MaxPool3d((1, ph, pw), stride=(1, ph, pw))
        h, w, c_in = self.height, self.width, self.in_channels
        for c in conv_channels:
            self.convs.append(nn.Conv3d(c_in, int(c), (kt, kh, kw), padding=(kt // 2, kh // 2, kw // 2),
                                        bias=not batch_norm))
            self.norms.append(MaskedBatchNorm(int(c)) if batch_norm else _NoNorm())
            self.acts.append(make_activation(activation, relu_clip))
            h, w, c_in = conv_out(h, ph, ph), conv_out(w, pw, pw), int(c)
            if h < 1 or w < 1:
                raise ValueError(f"frames of {height}x{width} are too small for {len(conv_channels)} "
                                 f"pools of {ph}x{pw}")
        self.output_shape = (c_in, h, w)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        if x.dim() != 5 or tuple(x.shape[2:]) != (self.in_channels, self.height, self.width):
            raise ValueError(
                f"SVS input must be (B, m, {self.in_channels}, {self.height}, {self.width}), got "
                f"{tuple(x.shape)}; set in_channels / height / width to match the SVS extractor"
            )
        y = mask_time(x.transpose(1, 2), lengths, time_dim=2)  # (B, C, m, h, w)
        if self.channels_last:
            y = y.contiguous(memory_format=torch.channels_last_3d)
        for conv, norm, act in zip(self.convs, self.norms, self.acts):
            # act(pool(.)) == pool(act(.)): every activation of make_activation is monotone
            # non-decreasing, and a max commutes with such a function, so the activation runs on
            # the pooled quarter (issue 13; the gradients agree too, tests/test_paper_c_speed.py)
            y = act(self.pool(norm(conv(y), lengths)))
            if self._mask_after_stage:
                y = mask_time(y, lengths, time_dim=2)
        return y.contiguous()


class CNN3DBiLSTM(nn.Module):
    """Paper C §4.2 3D CNN-BiLSTM (Fig. 5): :class:`SVSFrontEnd` -> per-frame Flatten ->
    FC 2 x ``fc_dim`` ReLU20 (eq. 6) -> split chi | chi' -> forward LSTM(chi), backward LSTM(chi')
    -> gamma = tanh(w5 h_fwd + w6 h_bwd) (eq. 7) -> Linear -> ``n_outputs`` logits per frame.

    ``forward(x: (B, m, C, h, w), lengths: LongTensor[B] | None) -> ModelOutput`` with
    ``logits (B, m, n_outputs)`` (blank last), ``hash_features (B, m, n_classes)`` (blank
    excluded) and ``lengths`` (unchanged, m is preserved).
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
        fc_dim: int = 512,
        lstm_hidden: int = 512,
        n_classes: int = 27,
        n_outputs: int | None = None,
        relu_clip: float = 20.0,
        conv_activation: str = "relu20",
        batch_norm: bool = True,
        dropout: float = 0.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.n_classes = int(n_classes)
        self.n_outputs = int(n_outputs) if n_outputs is not None else self.n_classes + 1
        if self.n_outputs not in (self.n_classes, self.n_classes + 1):
            raise ValueError(f"n_outputs must be n_classes (blank = last class) or n_classes + 1 "
                             f"(extra blank), got {self.n_outputs} for n_classes={self.n_classes}")
        self.blank_index = self.n_outputs - 1
        self.front = SVSFrontEnd(in_channels, height, width, conv_channels, kernel_size, pool,
                                 conv_activation, relu_clip, batch_norm, channels_last)
        c, h, w = self.front.output_shape
        self.fc_dim = int(fc_dim)
        self.fc = nn.Linear(c * h * w, 2 * self.fc_dim)
        self.fc_act = ReLU20(relu_clip)
        self.lstm_fwd = nn.LSTM(self.fc_dim, lstm_hidden, batch_first=True)
        self.lstm_bwd = nn.LSTM(self.fc_dim, lstm_hidden, batch_first=True)
        self.w5 = nn.Linear(lstm_hidden, self.fc_dim, bias=False)
        self.w6 = nn.Linear(lstm_hidden, self.fc_dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(self.fc_dim, self.n_outputs)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> ModelOutput:
        if x.dim() != 5:
            raise ValueError(f"CNN3DBiLSTM expects an SVS (B, m, C, h, w), got {tuple(x.shape)}")
        lengths = check_lengths(lengths, x.shape[0], x.shape[1], x.device)
        f = self.front(x, lengths)  # (B, C', m, h', w')
        b, _, m = f.shape[:3]
        f = f.transpose(1, 2).reshape(b, m, -1)
        z = self.fc_act(self.fc(f))
        chi, chi_b = z[..., : self.fc_dim], z[..., self.fc_dim :]
        h_fwd, _ = self.lstm_fwd(chi)
        h_bwd, _ = self.lstm_bwd(reverse_padded(chi_b, lengths))
        h_bwd = reverse_padded(h_bwd, lengths)
        gamma = torch.tanh(self.w5(h_fwd) + self.w6(h_bwd))
        logits = mask_time(self.out(self.dropout(gamma)), lengths)
        return ModelOutput(logits=logits, hash_features=logits[..., : self.n_classes], lengths=lengths)

    def compile_parts(self, **kwargs) -> None:
        """``torch.compile`` the 3D CNN front end in place (state-dict keys unchanged;
        ``dynamic=True``: the frame count varies). The LSTMs already run as one fused kernel per
        direction. :meth:`speechret.models.hash_modules.HashingModule.setup` calls this."""
        self.front.compile(dynamic=True, **kwargs)


__all__ = ["SVSFrontEnd", "CNN3DBiLSTM"]
