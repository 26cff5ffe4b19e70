"""Paper C (002) baseline: bidirectional RNN-LSTM over MFCC frames (ref. [30]), §5.1-5.2.

Paper C compares its SVS models with "the bidirectional RNN-LSTM model [30] (baseline) ... with
the MFCC features as the model input", trained with the same 27-class pronunciation model and
CTC and hashed the same way (§4.4). Its sizes are not given; defaults here (choices):
``layers=2`` stacked bidirectional LSTMs of ``hidden=256`` units per direction, run as packed
sequences (exact under padding), then per frame the bidirectional combination of paper C
eq. (4) / (7), y_t = tanh(w5 a_fwd_t + w6 a_bwd_t) (``combine="tanh_sum"``; ``"concat"`` feeds
[a_fwd; a_bwd] to the output layer instead), and Linear -> ``n_outputs`` logits (blank last).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .common import ModelOutput, check_lengths, mask_time


class BiLSTMBaseline(nn.Module):
    """``forward(x: (B, T, n_features), lengths: LongTensor[B] | None) -> ModelOutput`` with
    ``logits (B, T, n_outputs)``, ``hash_features (B, T, n_classes)`` and ``lengths``."""

    output_kind = "sequence"
    hash_method = "paper_c"

    def __init__(
        self,
        n_features: int = 20,
        hidden: int = 256,
        layers: int = 2,
        n_classes: int = 27,
        n_outputs: int | None = None,
        dropout: float = 0.0,
        combine: str = "tanh_sum",
    ) -> None:
        super().__init__()
        if combine not in ("tanh_sum", "concat"):
            raise ValueError(f"combine must be 'tanh_sum' or 'concat', got {combine!r}")
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.n_outputs = int(n_outputs) if n_outputs is not None else self.n_classes + 1
        if self.n_outputs not in (self.n_classes, self.n_classes + 1):
            raise ValueError(f"n_outputs must be n_classes or n_classes + 1, got {self.n_outputs}")
        self.blank_index = self.n_outputs - 1
        self.hidden = int(hidden)
        self.combine = combine
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True,
                            bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        if combine == "tanh_sum":
            self.w5 = nn.Linear(hidden, hidden, bias=False)
            self.w6 = nn.Linear(hidden, hidden, bias=False)
            out_in = hidden
        else:
            out_in = 2 * hidden
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(out_in, self.n_outputs)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> ModelOutput:
        if x.dim() != 3 or x.shape[2] != self.n_features:
            raise ValueError(f"BiLSTMBaseline expects (B, T, {self.n_features}), got {tuple(x.shape)}")
        lengths = check_lengths(lengths, x.shape[0], x.shape[1], x.device)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        seq, _ = self.lstm(packed)
        seq, _ = pad_packed_sequence(seq, batch_first=True, total_length=x.shape[1])
        if self.combine == "tanh_sum":
            a_f, a_b = seq[..., : self.hidden], seq[..., self.hidden :]
            y = torch.tanh(self.w5(a_f) + self.w6(a_b))
        else:
            y = seq
        logits = mask_time(self.out(self.dropout(y)), lengths)
        return ModelOutput(logits=logits, hash_features=logits[..., : self.n_classes], lengths=lengths)


__all__ = ["BiLSTMBaseline"]
