"""Acoustic front ends of the three papers, as batched, device-agnostic ``nn.Module`` s.

Every extractor has the same interface::

    feats, feat_lengths = extractor(wave, lengths)   # wave: float Tensor[B, T], lengths: Tensor[B] | None
    extractor.output_shape(n_samples)                 # per-item shape (no batch dim)
    extractor.num_frames(n_samples)                   # time steps of the output for one item

``lengths`` gives the number of valid samples of each row of a zero-padded batch (``None``: all
``T``).  Samples beyond an item's length are *ignored* (they are zeroed before any transform), so
the batched output of an item equals the output computed for that item alone (no cross-talk from
padding; checked by ``tests/test_features.py``).

The STFTs run in float32 with autocast disabled, whatever the caller's autocast / dtype, and the
results are float32.  All constant tensors (windows, filterbanks, DCT matrices, colour look-up
tables, resize matrices) are non-persistent buffers: they follow ``.to(device)`` but never enter a
checkpoint, so changing a front end never breaks ``load_state_dict`` of a model that embeds it.

=================  =========================================  ==========================================
class              paper                                       output with defaults (16 kHz input)
=================  =========================================  ==========================================
``LogMel``         A §3.1 eq. (1)-(2), §4.4 step 1             ``(B, 401, 20)``   4 s fixed, 25/10 ms
``MFCC``           A §3.1 eq. (1)-(3), §4.4 step 1             ``(B, 401, 20)``
``LogMelImage``    B §III-A eq. (1)-(7), §IV-E step 1          ``(B, 3, 224, 224)``
``SVS``            C §4.1 steps 1-5, §5.1                      ``(B, m_max, 3, 77, 155)``, m per item
``MFCCSequence``   C §5.1 baseline (BiLSTM over MFCC)          ``(B, T_max, 39)``, frames per item
``LogMelPitch``    speechret's own (YIN pitch, features.pitch)  ``(B, T_max, n_mels + 2)``
=================  =========================================  ==========================================

torchaudio is used only through :mod:`speechret.torchaudio_api` (mel filterbanks, DCT matrix,
deltas, resampling); replacing it is a change to that module alone.

Layout: :mod:`~speechret.features.base` (the interface and shared batched helpers),
:mod:`~speechret.features.mel` (A's Log-Mel / MFCC, C's MFCC sequence),
:mod:`~speechret.features.image` (B's Log-Mel image), :mod:`~speechret.features.pitch` (log-mel and a
YIN pitch track, speechret's own), :mod:`~speechret.features.svs` (C's SVS),
:mod:`~speechret.features.build` (:func:`build_features` from ``conf/features/*.yaml`` / Hydra
``_target_`` nodes).  Every class is re-exported here and its ``config["_target_"]`` is
``speechret.features.<Class>``, so saved configs do not depend on the module layout.
"""

from __future__ import annotations

from speechret.features.base import FeatureExtractor, fix_length, lengths_to_mask, resize_weights
from speechret.features.build import FEATURES_CONF_DIR, build_features, load_preset, preset_names
from speechret.features.image import LogMelImage
from speechret.features.mel import MFCC, LogMel, MFCCSequence
from speechret.features.pitch import LogMelPitch
from speechret.features.svs import SVS

__all__ = [
    "FeatureExtractor",
    "LogMel",
    "LogMelPitch",
    "MFCC",
    "LogMelImage",
    "SVS",
    "MFCCSequence",
    "FEATURES_CONF_DIR",
    "build_features",
    "load_preset",
    "preset_names",
    "lengths_to_mask",
    "fix_length",
    "resize_weights",
]
