"""Models: pure ``nn.Module`` architectures in :mod:`speechret.models.components` (the output
convention :class:`ModelOutput` is documented there) and the LightningModules that train them.

Only the architectures are re-exported here so that importing ``speechret.models`` stays cheap
(no Lightning import) for indexing and search.
"""

from .components import (
    MODELS,
    BiConvLSTMNet,
    BiLSTMBaseline,
    CNN3DBiLSTM,
    CNNBaselineNet,
    CNNHashNet,
    ConvLSTMCell,
    CRNNHashNet,
    LSTMHashNet,
    ModelOutput,
    RNNBaselineNet,
    SVSFrontEnd,
)

__all__ = [
    "MODELS",
    "BiConvLSTMNet",
    "BiLSTMBaseline",
    "CNN3DBiLSTM",
    "CNNBaselineNet",
    "CNNHashNet",
    "ConvLSTMCell",
    "CRNNHashNet",
    "LSTMHashNet",
    "ModelOutput",
    "RNNBaselineNet",
    "SVSFrontEnd",
]
