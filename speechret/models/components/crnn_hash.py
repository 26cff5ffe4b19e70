"""Paper B (001, IEEE Access): CRNN deep hashing coding model, §IV-C, Fig. 6(b).

"the CRNN coding model consists of 4 convolutional layers, 4 max pooling layers, 3 batch
normalization layers, 1 LSTM layer, 1 flatten layer and 2 fully connected layers. The input of
the model is still a 224x224 Log-Mel spectrogram of 3 channels, and the parameter settings of
convolution layer, max pooling layer, hash layer and classification layer are also the same as the
CNN model ... the CRNN model adds an LSTM layer after convolution and pooling operations ... and
sets Dropout to 0.7 ... the Reshape layer is added to reshape the feature dimension, so as to
adapt to the input of the LSTM layer."

Choices (configurable):

* Filters (32, 32, 64, 64): "the same as the CNN model" read as the CNN's first four 3x3 convs.
* Every conv (tanh) is followed by a 2x2 max-pool (stride 2, see :mod:`.cnn_hash` for why the
  "default step size" is taken as Keras' default = pool size); BatchNorm after the pools of the
  first three blocks (``bn_after=(0, 1, 2)``).
* Reshape: the time axis of the Log-Mel image is its width (``time_axis="width"``, the usual
  spectrogram image layout: x = time, y = frequency); each time step's feature vector is
  channels x height. 224 -> (64, 12, 12) with valid padding -> 12 steps of 768 features.
* LSTM(128 units, ``return_sequences=True``; the Flatten after it implies a sequence) ->
  Dropout 0.7 -> Flatten -> hash layer K (tanh, eq. 9-10) -> category layer (logits).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .cnn_hash import _check_image, _pair, conv_pool_stack
from .common import ModelOutput
from .lstm_hash import DenseHashHead


class CRNNHashNet(nn.Module):
    """Paper B Fig. 6(b) CRNN coding model.

    ``forward(x: (B, in_channels, H, W), lengths=None) -> ModelOutput`` with
    ``logits (B, n_classes)`` and ``hash_features (B, hash_bits)`` = tanh(omega(x)) (eq. 10).
    """

    output_kind = "classification"
    hash_method = "paper_b"

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int | Sequence[int] = 224,
        filters: Sequence[int] = (32, 32, 64, 64),
        hash_bits: int = 384,
        n_classes: int = 10,
        kernel_size: int = 3,
        padding: str = "valid",
        pool_size: int = 2,
        pool_stride: int = 2,
        bn_after: Sequence[int] = (0, 1, 2),
        lstm_units: int = 128,
        lstm_layers: int = 1,
        dropout: float = 0.7,
        time_axis: str = "width",
        activation: str = "tanh",
        hash_activation: str = "tanh",
    ) -> None:
        super().__init__()
        if time_axis not in ("width", "height"):
            raise ValueError(f"time_axis must be 'width' or 'height', got {time_axis!r}")
        self.in_channels = int(in_channels)
        self.image_size = _pair(image_size)
        self.hash_bits = int(hash_bits)
        self.n_classes = int(n_classes)
        self.time_axis = time_axis
        # every conv is followed by a pool (4 conv, 4 max-pool)
        self.features, self.feature_shape = conv_pool_stack(
            in_channels, self.image_size, filters, kernel_size, padding, pool_size, pool_stride,
            range(len(filters)), bn_after, activation)
        c_in, h, w = self.feature_shape
        steps, feat = (w, c_in * h) if time_axis == "width" else (h, c_in * w)
        self.n_steps = steps
        self.lstm = nn.LSTM(feat, lstm_units, num_layers=lstm_layers, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = DenseHashHead(steps * lstm_units, hash_bits, n_classes, hash_activation)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> ModelOutput:
        _check_image(self, x, self.in_channels, self.image_size)
        f = self.features(x)  # (B, C, H', W')
        b, c, h, w = f.shape
        if self.time_axis == "width":
            seq = f.permute(0, 3, 1, 2).reshape(b, w, c * h)
        else:
            seq = f.permute(0, 2, 1, 3).reshape(b, h, c * w)
        out, _ = self.lstm(seq)
        flat = self.dropout(out).reshape(b, -1)
        hf, logits = self.head(flat)
        return ModelOutput(logits=logits, hash_features=hf, lengths=None)


__all__ = ["CRNNHashNet"]
