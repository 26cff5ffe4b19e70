"""Paper A (000, KSII TIIS 14(6) 2020): LSTM deep hashing and its CNN / RNN comparison models.

§4.3 "LSTM model construction" (Fig. 5): "the framework consists mainly of LSTM and 2 fully
connected layers. The number of filters in the LSTM is 128, ... Batch Normalization ...
Dropout ... 0.75. The Flatten layer ... The fully connected layer Dense contains 384 nodes as the
feature extraction layer, and ... ReLU ... the SoftMax layer is used as the network output layer"
(10 content classes). §4.4 step 2: the deep features H = {H(i) | i = 1..M} are the outputs of
that Dense layer; eq. (7) binarises them against their median (:func:`speechret.hashing.hash_paper_a`).

Input: ``(B, T, F)`` time-major frames, T = 401 (4 s at a 10 ms hop), F = 20 Log-Mel or MFCC
coefficients (§4.4 step 1). The input duration is fixed by the feature extractor (pad / crop to
4 s), so the padding is part of the signal exactly as in the paper and ``lengths`` is ignored.

Choices where paper A is silent (all configurable):

* The LSTM is Keras-style ``return_sequences=True`` (a Flatten after it only makes sense on a
  sequence), one layer, unidirectional.
* BatchNorm normalises the 128 LSTM channels over batch x time (Keras ``BatchNormalization``
  default ``axis=-1``).
* The softmax is not part of the module: ``logits`` are returned and the loss applies it. (Paper A
  trains with Keras "binary cross entropy" over the softmax output and SGD; that is the training
  module's business.)
* Tables 1-2 compare CNN and RNN models whose sizes paper A does not give. :class:`CNNBaselineNet`
  and :class:`RNNBaselineNet` keep the whole tail of the LSTM model (BatchNorm -> Dropout ->
  Flatten -> Dense 384 ReLU -> Dense classes) so that only the sequence encoder differs: a
  two-block 1D CNN over time (64, 128 filters of width 3, ReLU, max-pool 2) and a 128-unit
  Elman RNN (``tanh``, Keras ``SimpleRNN``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .common import ModelOutput, conv_out, make_activation


class DenseHashHead(nn.Module):
    """Dense(hash_dim) + activation (the hash / feature layer) followed by Dense(n_classes).

    Returns ``(hash_features, logits)``; ``hash_features`` are the activations after the
    nonlinearity (paper A: ReLU, Fig. 5; paper B: tanh, eq. (10)).
    """

    def __init__(self, in_features: int, hash_dim: int, n_classes: int, activation: str = "relu") -> None:
        super().__init__()
        if hash_dim < 1 or n_classes < 2:
            raise ValueError(f"hash_dim must be >= 1 and n_classes >= 2, got {hash_dim}, {n_classes}")
        self.hash_layer = nn.Linear(in_features, hash_dim)
        self.hash_act = make_activation(activation)
        self.classifier = nn.Linear(hash_dim, n_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.hash_act(self.hash_layer(x))
        return h, self.classifier(h)


class _FixedFrameClassifier(nn.Module):
    """Shared input checks and tail (BN -> Dropout -> Flatten -> hash head) of paper A models."""

    output_kind = "classification"
    hash_method = "paper_a"

    def __init__(
        self,
        n_features: int,
        n_frames: int,
        enc_channels: int,
        enc_frames: int,
        dropout: float,
        hash_dim: int,
        n_classes: int,
        batch_norm: bool,
        hash_activation: str,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_features = int(n_features)
        self.n_frames = int(n_frames)
        self.hash_dim = int(hash_dim)
        self.n_classes = int(n_classes)
        self.norm = nn.BatchNorm1d(enc_channels) if batch_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.head = DenseHashHead(enc_channels * enc_frames, hash_dim, n_classes, hash_activation)

    def _check(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.n_frames or x.shape[2] != self.n_features:
            raise ValueError(
                f"{type(self).__name__} expects (B, {self.n_frames}, {self.n_features}) frames, got "
                f"{tuple(x.shape)}; the Flatten -> Dense layer fixes the frame count (paper A fixes "
                "the input to 4 s), set n_frames / n_features to match the feature extractor"
            )

    def _tail(self, seq: Tensor) -> ModelOutput:
        """``seq``: ``(B, C, T')`` channel-first encoder output."""
        seq = self.dropout(self.norm(seq))
        # Keras Flatten of a (T', C) tensor is time-major: keep that order.
        flat = seq.transpose(1, 2).reshape(seq.shape[0], -1)
        h, logits = self.head(flat)
        return ModelOutput(logits=logits, hash_features=h, lengths=None)


class LSTMHashNet(_FixedFrameClassifier):
    """Paper A §4.3, Fig. 5: LSTM(128, sequence) -> BatchNorm -> Dropout 0.75 -> Flatten ->
    Dense 384 ReLU (hash / feature layer, §4.4 step 2) -> Dense ``n_classes`` (softmax in the loss).

    ``forward(x: (B, n_frames, n_features), lengths=None) -> ModelOutput`` with
    ``logits (B, n_classes)`` and ``hash_features (B, hash_dim)`` = H of eq. (7).
    """

    def __init__(
        self,
        n_features: int = 20,
        n_frames: int = 401,
        lstm_units: int = 128,
        dropout: float = 0.75,
        hash_dim: int = 384,
        n_classes: int = 10,
        lstm_layers: int = 1,
        batch_norm: bool = True,
        hash_activation: str = "relu",
    ) -> None:
        super().__init__(n_features, n_frames, lstm_units, n_frames, dropout, hash_dim, n_classes,
                         batch_norm, hash_activation)
        self.lstm = nn.LSTM(n_features, lstm_units, num_layers=lstm_layers, batch_first=True)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> ModelOutput:
        self._check(x)
        seq, _ = self.lstm(x)  # (B, T, U)
        return self._tail(seq.transpose(1, 2))


class RNNBaselineNet(_FixedFrameClassifier):
    """Paper A Tables 1-2 "RNN" comparison: Elman RNN (Keras SimpleRNN, ``tanh``) with the same
    tail as :class:`LSTMHashNet` (BatchNorm -> Dropout -> Flatten -> Dense 384 ReLU -> Dense).
    Sizes are not given by paper A; defaults mirror the LSTM model (128 units, dropout 0.75).
    """

    def __init__(
        self,
        n_features: int = 20,
        n_frames: int = 401,
        rnn_units: int = 128,
        dropout: float = 0.75,
        hash_dim: int = 384,
        n_classes: int = 10,
        rnn_layers: int = 1,
        nonlinearity: str = "tanh",
        batch_norm: bool = True,
        hash_activation: str = "relu",
    ) -> None:
        super().__init__(n_features, n_frames, rnn_units, n_frames, dropout, hash_dim, n_classes,
                         batch_norm, hash_activation)
        self.rnn = nn.RNN(n_features, rnn_units, num_layers=rnn_layers, nonlinearity=nonlinearity,
                          batch_first=True)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> ModelOutput:
        self._check(x)
        seq, _ = self.rnn(x)
        return self._tail(seq.transpose(1, 2))


class CNNBaselineNet(_FixedFrameClassifier):
    """Paper A Tables 1-2 "CNN" comparison: a 1D CNN over time on the same 20-d frames.

    ``len(channels)`` blocks of Conv1d(kernel_size, 'same' padding) -> ReLU -> MaxPool1d(pool)
    (the F = 20 coefficients are the input channels), then the tail of :class:`LSTMHashNet`
    (BatchNorm -> Dropout -> Flatten -> Dense 384 ReLU -> Dense). Paper A gives no CNN sizes;
    defaults (64, 128) filters of width 3 and pool 2 are our choice (401 frames -> 100).
    """

    def __init__(
        self,
        n_features: int = 20,
        n_frames: int = 401,
        channels: Sequence[int] = (64, 128),
        kernel_size: int = 3,
        pool: int = 2,
        dropout: float = 0.75,
        hash_dim: int = 384,
        n_classes: int = 10,
        batch_norm: bool = True,
        hash_activation: str = "relu",
    ) -> None:
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("CNNBaselineNet needs at least one conv block")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd ('same' padding), got {kernel_size}")
        t = int(n_frames)
        for _ in channels:
            t = conv_out(t, pool, pool)
        if t < 1:
            raise ValueError(f"n_frames={n_frames} is too short for {len(channels)} pools of {pool}")
        super().__init__(n_features, n_frames, channels[-1], t, dropout, hash_dim, n_classes,
                         batch_norm, hash_activation)
        layers: list[nn.Module] = []
        c_in = int(n_features)
        for c in channels:
            layers += [nn.Conv1d(c_in, c, kernel_size, padding=kernel_size // 2), nn.ReLU(),
                       nn.MaxPool1d(pool)]
            c_in = c
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> ModelOutput:
        self._check(x)
        return self._tail(self.encoder(x.transpose(1, 2)))


__all__ = ["DenseHashHead", "LSTMHashNet", "RNNBaselineNet", "CNNBaselineNet"]
