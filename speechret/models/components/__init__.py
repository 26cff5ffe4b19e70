"""Pure ``nn.Module`` architectures of the three papers (no training logic here).

Every constructor argument is a plain int / float / str / sequence, so Hydra can build any model
with ``_target_: speechret.models.components.<Class>``.

One output convention for all models
-----------------------------------
``model(x, lengths=None) -> ModelOutput`` (a :class:`~typing.NamedTuple`, so it also unpacks as
``logits, hash_features, lengths = model(x)``):

=================  ===================================  ======================================
field              classification models (A, B)         sequence / CTC models (C)
=================  ===================================  ======================================
``logits``         ``(B, n_classes)`` un-normalised      ``(B, T, n_outputs)`` per frame;
                   (softmax lives in the loss)           ``n_outputs = 28``: classes 0..26
                                                         (26 = "other"), CTC blank LAST (27);
                                                         zero at ``t >= lengths``
``hash_features``  ``(B, K)`` hash-layer activations     ``(B, T, 27)`` per-frame scores of the
                   before binarisation (A: ReLU(Dense    27 pronunciation classes (blank
                   384) = H of eq. 7; B: tanh(omega),    column dropped) = o_t of §4.4 step 1
                   eq. 10)
``lengths``        ``None``                              ``LongTensor[B]`` valid frames
=================  ===================================  ======================================

Each model class also carries ``output_kind`` (``"classification"`` / ``"sequence"``) and
``hash_method`` (a paper name such as ``paper_a``), the name of
:data:`speechret.hashing.HASHERS` that turns its output into codes
(:func:`speechret.hashing.codes_from_output`).

Models
------
* paper A §4.3 / Tables 1-2: :class:`LSTMHashNet`, :class:`CNNBaselineNet`, :class:`RNNBaselineNet`
  - input ``(B, 401, 20)`` Log-Mel / MFCC frames.
* paper B §IV-C Fig. 6: :class:`CNNHashNet` (a), :class:`CRNNHashNet` (b) - input
  ``(B, 3, 224, 224)`` Log-Mel image.
* paper C §4.2-4.3: :class:`CNN3DBiLSTM`, :class:`BiConvLSTMNet` (shared :class:`SVSFrontEnd`)
  - input SVS ``(B, m, C, 77, 155)`` + lengths; baseline :class:`BiLSTMBaseline` - input MFCC
  ``(B, T, F)`` + lengths.
"""

from .bilstm_baseline import BiLSTMBaseline
from .cnn3d_bilstm import CNN3DBiLSTM, SVSFrontEnd
from .cnn_hash import CNNHashNet
from .common import MaskedBatchNorm, ModelOutput, ReLU20, length_mask, mask_time, reverse_padded
from .conv_lstm import BiConvLSTMNet, ConvLSTM, ConvLSTMCell
from .crnn_hash import CRNNHashNet
from .lstm_hash import CNNBaselineNet, DenseHashHead, LSTMHashNet, RNNBaselineNet

#: name -> class, for configs and CLIs that name a model without a ``_target_``.
MODELS = {
    "lstm_hash": LSTMHashNet,
    "cnn_baseline": CNNBaselineNet,
    "rnn_baseline": RNNBaselineNet,
    "cnn_hash": CNNHashNet,
    "crnn_hash": CRNNHashNet,
    "cnn3d_bilstm": CNN3DBiLSTM,
    "biconvlstm": BiConvLSTMNet,
    "bilstm_baseline": BiLSTMBaseline,
}

__all__ = [
    "MODELS",
    "BiConvLSTMNet",
    "BiLSTMBaseline",
    "CNN3DBiLSTM",
    "CNNBaselineNet",
    "CNNHashNet",
    "ConvLSTM",
    "ConvLSTMCell",
    "CRNNHashNet",
    "DenseHashHead",
    "LSTMHashNet",
    "MaskedBatchNorm",
    "ModelOutput",
    "ReLU20",
    "RNNBaselineNet",
    "SVSFrontEnd",
    "length_mask",
    "mask_time",
    "reverse_padded",
]
