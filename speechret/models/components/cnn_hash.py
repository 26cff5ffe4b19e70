"""Paper B (001, IEEE Access): CNN deep hashing coding model, §IV-C, Fig. 6(a).

"the CNN coding model consists of 6 convolutional layers, 4 max pooling layers, 2 batch
normalization layers, 1 flatten layer and 2 fully connected layers. The input of the model is
224x224 Log-Mel spectrogram of 3 channels, the filter size of each convolutional layer is 3x3,
and the number of filters is (32, 32, 64, 64, 128, 128). The filter size used by each max pooling
layer is 2x2, and the default step size is 1. The first fully connected layer is the hash layer,
and the number of nodes K represents the length of the semantic feature hash. The final fully
connected layer is the classification layer, the activation function is softmax, and the number
of nodes is set to 10 ... The activation functions of convolutional layer and hash layer are tanh."

The hash layer computes omega(x) = W^T f(x; theta) + b (eq. 9) and tanh(omega) (eq. 10); the
binary codes h2 (eq. 11-12) and h1 (eq. 13-15) are built by :func:`speechret.hashing.hash_paper_b`.

Choices where the text and Fig. 6(a) leave room (all configurable):

* Placement of pools and BatchNorms. Default (0-based conv indices): conv0 conv1 pool BN,
  conv2 conv3 pool BN, conv4 pool, conv5 pool, i.e. ``pool_after=(1, 3, 4, 5)``,
  ``bn_after=(1, 3)`` (a BN sits after its block's pool). This matches "6 conv, 4 max-pool, 2 BN"
  with the usual VGG-style doubling of filters per block.
* Pool stride. The text says the 2x2 pools have "default step size is 1". A stride-1 pool barely
  shrinks the map (224 -> ~212 after 6 valid convs and 4 pools), so Flatten would give
  128 x 212 x 212 = 5.7M features and a hash layer of 5.7M x K weights (2.2G for K = 384):
  untrainable on the paper's 16 GB laptop and certainly not what was run. The paper's models were
  written in Keras, whose ``MaxPooling2D`` default stride ("default step size") equals the pool
  size, so we take ``pool_stride=2`` by default; ``pool_stride=1`` reproduces the literal reading.
* Padding: Keras ``Conv2D`` default ``padding="valid"``; ``"same"`` is selectable.
* Dropout before the hash layer: none in the text (``dropout=0.0``).
* The softmax is applied by the loss, ``logits`` are returned.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .common import ModelOutput, conv_out, make_activation
from .lstm_hash import DenseHashHead


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    h, w = (int(a) for a in v)
    return (h, w)


def _check_image(model: nn.Module, x: Tensor, in_channels: int, size: tuple[int, int]) -> None:
    if x.dim() != 4 or x.shape[1] != in_channels or tuple(x.shape[2:]) != size:
        raise ValueError(
            f"{type(model).__name__} expects (B, {in_channels}, {size[0]}, {size[1]}) images, got "
            f"{tuple(x.shape)}; set in_channels / image_size to match the feature extractor"
        )


def conv_pool_stack(
    in_channels: int,
    image_size: tuple[int, int],
    filters: Sequence[int],
    kernel_size: int,
    padding: str,
    pool_size: int,
    pool_stride: int,
    pool_after: Sequence[int],
    bn_after: Sequence[int],
    activation: str,
) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """The paper-B convolution stack shared by the CNN and CRNN coding models (Fig. 6).

    Layer ``i``: Conv2d(k×k, stride 1) → activation → [MaxPool(pool_size, pool_stride) if
    ``i in pool_after``] → [BatchNorm2d if ``i in bn_after``].  Returns the stack and its output
    shape ``(C, H, W)`` for an ``image_size`` input."""
    filters = [int(f) for f in filters]
    pool_after, bn_after = {int(i) for i in pool_after}, {int(i) for i in bn_after}
    for name, idx in (("pool_after", pool_after), ("bn_after", bn_after)):
        bad = sorted(i for i in idx if not 0 <= i < len(filters))
        if bad:
            raise ValueError(f"{name} indices {bad} out of range for {len(filters)} conv layers")
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    pad = kernel_size // 2 if padding == "same" else 0
    h, w = image_size
    layers: list[nn.Module] = []
    c_in = int(in_channels)
    for i, c in enumerate(filters):
        layers += [nn.Conv2d(c_in, c, kernel_size, padding=pad), make_activation(activation)]
        h, w = conv_out(h, kernel_size, 1, pad), conv_out(w, kernel_size, 1, pad)
        if i in pool_after:
            layers.append(nn.MaxPool2d(pool_size, stride=pool_stride))
            h, w = conv_out(h, pool_size, pool_stride), conv_out(w, pool_size, pool_stride)
        if i in bn_after:
            layers.append(nn.BatchNorm2d(c))
        if h < 1 or w < 1:
            raise ValueError(f"image_size {image_size} too small for this conv/pool stack")
        c_in = c
    return nn.Sequential(*layers), (c_in, h, w)


class CNNHashNet(nn.Module):
    """Paper B Fig. 6(a) CNN coding model.

    ``forward(x: (B, in_channels, H, W), lengths=None) -> ModelOutput`` with
    ``logits (B, n_classes)`` (category layer, eq. 13 softmax applied by the loss) and
    ``hash_features (B, hash_bits)`` = tanh(omega(x)) of eq. (10).
    """

    output_kind = "classification"
    hash_method = "paper_b"

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int | Sequence[int] = 224,
        filters: Sequence[int] = (32, 32, 64, 64, 128, 128),
        hash_bits: int = 384,
        n_classes: int = 10,
        kernel_size: int = 3,
        padding: str = "valid",
        pool_size: int = 2,
        pool_stride: int = 2,
        pool_after: Sequence[int] = (1, 3, 4, 5),
        bn_after: Sequence[int] = (1, 3),
        activation: str = "tanh",
        hash_activation: str = "tanh",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.image_size = _pair(image_size)
        self.hash_bits = int(hash_bits)
        self.n_classes = int(n_classes)
        self.features, self.feature_shape = conv_pool_stack(
            in_channels, self.image_size, filters, kernel_size, padding, pool_size, pool_stride,
            pool_after, bn_after, activation)
        c_in, h, w = self.feature_shape
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.head = DenseHashHead(c_in * h * w, hash_bits, n_classes, hash_activation)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> ModelOutput:
        _check_image(self, x, self.in_channels, self.image_size)
        f = self.dropout(self.flatten(self.features(x)))
        h, logits = self.head(f)
        return ModelOutput(logits=logits, hash_features=h, lengths=None)


__all__ = ["CNNHashNet", "conv_pool_stack"]
