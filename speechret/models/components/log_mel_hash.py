"""What speechret's log-mel hash backbones share: the input, the pooling and the hash head.

A backbone (:class:`~speechret.models.components.resnet_hash.ResNetHashNet`,
:class:`~speechret.models.components.bc_resnet.BCResNetHashNet`) turns a variable-length log-mel
``(B, T, F)`` into a ``(B, C, F', T')`` map with ``T'`` valid frames per item; this base class
holds the steps before and after it, so that every backbone makes codes the same way:

* :meth:`LogMelHashNet.image`: the log-mel as a one-channel image ``(B, 1, F, T)``, each mel band
  normalised per utterance over its valid frames (CMVN, which removes the channel's and, in part,
  the speaker's spectral tilt; ``cmvn="mean"`` subtracts the mean only, Kaldi's ``apply-cmvn``
  default, ``norm_vars=false``: a band-limited recording's empty bands then stay flat instead of
  being scaled up to unit variance) and zero beyond them, as a lone item's padding would be;
* with ``time_frames``, each item's valid frames linearly resampled to that many frames
  (:func:`linear_time_normalize`);
* :meth:`LogMelHashNet.head`: mean and max over each item's valid frames only (and over
  frequency too with ``pool_freq``; ``time_segments`` parts apart: a one-level temporal pyramid,
  He et al., "Spatial Pyramid Pooling in Deep Convolutional Networks for Visual Recognition",
  ECCV 2014, §2.3, along time only), an embedding, the tanh hash layer ``u = tanh(W e)`` of
  ``hash_bits`` units (the relaxation of sign(·) used by DPSH and CSQ), whose sign is the code,
  a linear classifier on ``u`` for cross-entropy (on ``sign(u)`` with ``straight_through``, below),
  and in training an optional per-frame head on the map for an auxiliary CTC term
  (:class:`~speechret.models.losses.FrameCTCLoss`).

``straight_through``: the classifier sees the code itself, ``sign(u)`` (+1 where ``u > 0``, else -1: the
bits :mod:`speechret.hashing.methods.sign` stores), and its gradient reaches ``u``
unchanged (the straight-through estimator of Bengio, Léonard & Courville, arXiv:1308.3432, 2013, as
Greedy Hash uses it: Su, Zhang, Han & Tian, "Greedy Hash: Towards Fast Optimization for Accurate Hash
Coding in CNN", NeurIPS 2018, §3).  Cross-entropy is then a loss on the binary code the
index stores, not on its relaxation; the hash objectives stay on ``u``.  Greedy Hash's own penalty
``|u - sign(u)|^3`` is not added: the centre loss's quantization term plays that part.

``time_frames`` (``None`` by default) is the linear time normalisation of isolated-word recognisers
(Rabiner & Juang, *Fundamentals of Speech Recognition*, 1993, ch. 4, time alignment and
normalisation): every trimmed word reaches the network as ``time_frames`` frames, so a voice that
speaks faster or slower than the training voices shows it the same number of frames per syllable.
The speaking rate is taken out of the input; the speed perturbation of training then varies the
spectrum (pitch and formants) only.  On DSPSpeech-20 some voices' words are 40 % shorter than the
median (15307130288's fifth repetitions), further than the training speeds (up to 1.35) reach.
Measured on ``speechret_hash`` with ``time_frames=96`` (the median word) and not kept: validation
folds 1 / 3 moved by +0.019 / -0.032 (``reports/cross_speaker.md``, 2026-12-07); the word's own
duration carries something some voices need.

``pitch_points`` (0 by default) reads a pitch track beside the log-mel: the input then has ``n_mels + 2``
columns, the last two ``log2 F0`` and the periodicity of each frame (:class:`speechret.features.LogMelPitch`,
YIN).  :meth:`LogMelHashNet.pitch` takes the speaker's register out of the contour (log F0 minus its mean
over the item's frames weighted by their periodicity, in octaves, as tone recognisers normalise F0 per
speaker: e.g. Lee et al., "Using tone information in Cantonese continuous speech recognition", ACM
TALIP 2002, §3), weights each frame by its periodicity (an unvoiced frame's F0 is noise), samples the
weighted contour and the periodicity at ``pitch_points`` points over the word (:func:`linear_time_normalize`:
where in the word the pitch rises or falls survives, as a tone's shape needs), and maps them by a linear
layer, batch norm and ReLU to ``pitch_embed`` features joined to the pooled map before the embedding.
Mandarin's near-homophones (北京 / 背景, 上海 / 商行, 语音 / 语言) differ only in tone.

``rnn_hidden`` (0 by default): a bidirectional GRU of that many units a direction runs over each item's
valid frames of the last map (every frame's ``C F'`` features; packed, so the padding is never read), and
the pooling reads its outputs instead of the map: a convolutional recurrent head, as in Arik et al.,
"Convolutional Recurrent Neural Networks for Small-Footprint Keyword Spotting", Interspeech 2017, which
keeps the order of the word's sounds that mean and max pooling drop.

Pooling only over valid frames makes an item's code in ``eval()`` mode independent of the batch
it is in.  The submodules keep the names ``embed`` / ``hash`` / ``classifier`` / ``frame_head``
of the first backbone, so its checkpoints load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from speechret.features.resample_axis import sample_last_axis
from speechret.models.components.common import ModelOutput, check_lengths, instance_statistics, mask_time

__all__ = ["HeadOptions", "LogMelHashNet", "linear_time_normalize", "straight_through_sign"]


def straight_through_sign(u: Tensor) -> Tensor:
    """The code of ``u`` as ±1 (+1 where ``u > 0``, the bits the sign method stores) in the forward pass,
    the identity in the backward pass: the straight-through estimator (module docstring)."""
    return u + ((u > 0).to(u.dtype) * 2 - 1 - u).detach()


def linear_time_normalize(h: Tensor, lengths: Tensor, frames: int) -> Tensor:
    """Each item's ``lengths`` valid frames of ``h`` (B, C, F, T) resampled to ``frames`` frames by
    linear interpolation (frame centres aligned: output frame ``j`` reads input position
    ``(j + 0.5) n / frames - 0.5``, clamped to ``[0, n - 1]``); returns (B, C, F, frames), every frame
    valid.  Only valid frames are read, so an item's output does not depend on its padding."""
    n = lengths.clamp(1, h.shape[-1]).to(torch.float32)[:, None]
    pos = ((torch.arange(frames, device=h.device, dtype=torch.float32)[None, :] + 0.5) * n / frames - 0.5)
    return sample_last_axis(h, torch.minimum(pos.clamp_min(0.0), n - 1), n.long() - 1)


@dataclass(frozen=True)
class HeadOptions:
    """The options of the input, pooling and hash head every log-mel backbone shares (module docstring).

    A backbone takes its own arguments and, as keywords, these (``model.net.<option>`` in the configs):
    one list, so that a new head option touches this class and the head's own code
    (:meth:`LogMelHashNet._init_head`, :meth:`LogMelHashNet.head`), not every backbone.

    Args:
        embed_dim: width of the embedding between pooling and the hash layer.
        dropout: dropout before the hash layer.
        cmvn: normalise each mel band per utterance over its valid frames: ``True`` its mean and
            variance, ``"mean"`` its mean only, ``False`` neither.
        pool_freq: ``True`` pools mean and max over time *and* frequency (res8/res15's global
            pooling: ``2 C`` features); ``False`` pools over time only and keeps the ``F'``
            frequency rows of the last map (``2 C F'`` features): where in the spectrum a pattern
            lies survives pooling.  Each backbone sets its own default
            (:class:`~speechret.models.components.resnet_hash.ResNetHashNet`: ``True``, res15's).
        time_segments: ``S`` consecutive parts of each item's valid frames at the last map,
            pooled (mean and max) apart and concatenated (``S`` times the pooled features): a
            one-level temporal pyramid (module docstring).  ``1`` (default) pools the whole word;
            ``2`` keeps which half of the word a pattern lies in.  Part ``s`` covers frames
            ``[floor(s n / S), floor((s + 1) n / S))`` of the ``n`` valid frames, at least one frame
            each (parts overlap when ``n < S``).
        frame_classes: ``C > 0`` adds an auxiliary per-frame head on the last map: a linear layer from
            each frame's ``C_map · F'`` features to ``C + 1`` scores (the last one the CTC blank),
            returned in training only as ``ModelOutput.frame_logits`` / ``frame_lengths`` for a CTC
            term of the objective (:class:`~speechret.models.losses.FrameCTCLoss`, e.g. on paper C's
            27 pronunciation classes: ``C = 27``).  It is a training signal only: in ``eval()`` mode
            it is not run, so codes, exports and search are those of the net without it.  ``0``
            (default): none.
        straight_through: the classifier sees ``sign(u)``, the stored code, with the gradient passed
            straight through to ``u`` (Greedy Hash, module docstring).  ``False`` (default): it sees
            ``u``.  The codes are ``sign(u)`` either way.
        time_frames: ``None`` (default) or the number of frames every item's valid frames are
            linearly resampled to before the stem (linear time normalisation, module docstring).
        pitch_points: ``0`` (default) or the points at which the pitch branch samples the contour of
            a pitch track in the input's last two columns (``n_mels + 2`` columns, as
            :class:`speechret.features.LogMelPitch` gives; module docstring).
        pitch_embed: the pitch branch's output features.
        rnn_hidden: ``0`` (default) or the units a direction of a bidirectional GRU over the last
            map's valid frames, whose outputs are pooled instead of the map (a CRNN head, module
            docstring).
    """

    embed_dim: int = 256
    dropout: float = 0.1
    cmvn: bool | str = True
    pool_freq: bool = False
    time_segments: int = 1
    frame_classes: int = 0
    straight_through: bool = False
    time_frames: int | None = None
    pitch_points: int = 0
    pitch_embed: int = 64
    rnn_hidden: int = 0

    @classmethod
    def of(cls, owner: str, options: Mapping[str, Any]) -> HeadOptions:
        """The options a backbone ``owner`` was given beyond its own arguments; a ``TypeError`` naming
        ``owner`` and the unknown keys (with the accepted ones) for any that is not a head option."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise TypeError(f"{owner}: unknown argument(s) {unknown}; beyond its own arguments a log-mel "
                            f"backbone takes the head options {names}")
        return cls(**options)


class LogMelHashNet(nn.Module):
    """Base class of the log-mel hash backbones (see the module docstring).

    A subclass calls :meth:`_init_head` with its :class:`HeadOptions` once it knows its last map's
    channels and frequency rows, and in ``forward`` runs ``self.head(backbone(self.image(x, lengths)), frames)``.
    """

    def _init_head(self, n_mels: int, n_classes: int, hash_bits: int, channels: int, rows: int,
                   options: HeadOptions) -> None:
        """Build the pooling / hash / classifier head over a last map of ``channels`` × ``rows``
        (frequency rows after the backbone), the pitch branch (``pitch_points > 0``) and the recurrent
        layer (``rnn_hidden > 0``), and set the input's ``time_frames``, as ``options`` say.  Argument
        errors name the subclass."""
        name, o = type(self).__name__, options
        if int(o.pitch_points) < 0 or (int(o.pitch_points) and int(o.pitch_embed) < 1):
            raise ValueError(f"{name}: pitch_points must be >= 0 (0: no pitch track) and pitch_embed >= 1, "
                             f"got {o.pitch_points}, {o.pitch_embed}")
        self.pitch_points = int(o.pitch_points)
        side = int(o.pitch_embed) if self.pitch_points else 0
        self.pitch_branch = (nn.Sequential(nn.Linear(2 * self.pitch_points, side), nn.BatchNorm1d(side),
                                           nn.ReLU(inplace=True)) if side else None)
        if o.time_frames is not None and int(o.time_frames) < 1:
            raise ValueError(f"{name}: time_frames must be >= 1 or null, got {o.time_frames}")
        self.time_frames = None if o.time_frames is None else int(o.time_frames)
        if int(o.frame_classes) < 0:
            raise ValueError(f"{name}: frame_classes must be >= 0 (0: no frame head), got {o.frame_classes}")
        if int(o.time_segments) < 1:
            raise ValueError(f"{name}: time_segments must be >= 1, got {o.time_segments}")
        if o.cmvn not in (True, False, "mean"):
            raise ValueError(f"{name}: cmvn must be true (mean and variance), 'mean' (mean only) or false, "
                             f"got {o.cmvn!r}")
        self.n_mels, self.cmvn = int(n_mels), o.cmvn
        self.pool_freq, self.time_segments = bool(o.pool_freq), int(o.time_segments)
        self.straight_through = bool(o.straight_through)
        if int(o.rnn_hidden) < 0:
            raise ValueError(f"{name}: rnn_hidden must be >= 0 (0: no recurrent layer), got {o.rnn_hidden}")
        map_features = channels * rows  # per frame of the last map
        self.rnn = (nn.GRU(map_features, int(o.rnn_hidden), batch_first=True, bidirectional=True)
                    if int(o.rnn_hidden) else None)
        if self.rnn is not None:  # the pooling then reads the GRU's 2 H features per frame
            channels, rows = 2 * int(o.rnn_hidden), 1
        pooled = 2 * channels * (1 if self.pool_freq else rows) * self.time_segments
        self.embed = nn.Sequential(nn.Linear(pooled + side, o.embed_dim), nn.BatchNorm1d(o.embed_dim),
                                   nn.ReLU(inplace=True), nn.Dropout(o.dropout))
        self.hash = nn.Linear(o.embed_dim, hash_bits)
        self.classifier = nn.Linear(hash_bits, n_classes)
        self.frame_head = nn.Linear(map_features, int(o.frame_classes) + 1) if o.frame_classes else None

    def _init_style(self, style: nn.Module | None, style_after: Sequence[int], stage_blocks: Sequence[int]) -> None:
        """The stage hook: ``style`` (``m(h, lengths)``: MixStyle, IBN-b) runs after the last block of each
        stage named in ``style_after`` (0-based) of stages of ``stage_blocks`` blocks each; ``None``: none."""
        n = len(stage_blocks)
        bad = [i for i in style_after if not 0 <= int(i) < n]
        if style is not None and bad:
            raise ValueError(f"{type(self).__name__}: style_after names stages {bad}; there are {n} (0-based)")
        self.style = style
        ends = [sum(stage_blocks[:i + 1]) - 1 for i in range(n)]
        self._style_at = {ends[int(i)] for i in style_after} if style is not None else set()

    def styled(self, k: int, h: Tensor, lengths: Tensor) -> Tensor:
        """``h`` after block ``k``, through the stage hook where ``k`` ends a stage of ``style_after``."""
        return self.style(h, lengths) if k in self._style_at else h

    def image(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(B, T, n_mels)`` log-mel → ``(B, 1, F, T)`` image (CMVN'd with ``cmvn``, zero beyond each
        item's frames; with ``time_frames``, ``T = time_frames`` and every frame valid) and the checked
        ``lengths``."""
        cols = self.n_mels + (2 if self.pitch_points else 0)
        if x.ndim != 3 or x.shape[-1] != cols:
            what = "log-mel and a pitch track (log2 F0, periodicity)" if self.pitch_points else "log-mel"
            raise ValueError(f"{type(self).__name__} expects (B, T, {cols}) {what}, got {tuple(x.shape)}")
        b, t, _ = x.shape
        lengths = check_lengths(lengths, b, t, x.device)
        h = x[..., : self.n_mels].transpose(1, 2)[:, None]  # (B, 1, F, T)
        if self.cmvn:  # each band per utterance over its valid frames
            mu, sig, valid = instance_statistics(h, lengths, (3,), eps=1e-5)
            h = (h - mu) * valid if self.cmvn == "mean" else (h - mu) / sig * valid
        else:
            h = mask_time(h, lengths, 3)
        if self.time_frames is not None:
            h = linear_time_normalize(h, lengths, self.time_frames)
            lengths = torch.full_like(lengths, self.time_frames)
        return h, lengths

    def pitch(self, x: Tensor, lengths: Tensor | None) -> Tensor | None:
        """The pitch branch's features (B, pitch_embed) from the input's last two columns (module
        docstring); ``None`` without ``pitch_points``."""
        if not self.pitch_points:
            return None
        lengths = check_lengths(lengths, x.shape[0], x.shape[1], x.device)
        track = x[..., self.n_mels:].transpose(1, 2)[:, :, None]        # (B, 2, 1, T)
        valid = mask_time(torch.ones_like(track[:, :1]), lengths, 3)
        periodic = track[:, 1:].clamp(0.0, 1.0) * valid
        weight = periodic.sum(3, keepdim=True)
        register = (track[:, :1] * periodic).sum(3, keepdim=True) / weight.clamp_min(1e-6)
        contour = (track[:, :1] - register) * periodic                  # octaves from the register
        points = linear_time_normalize(torch.cat([contour, periodic], 1), lengths, self.pitch_points)
        return self.pitch_branch(points.flatten(1))

    def _pool(self, h: Tensor, valid: Tensor, count: Tensor) -> list[Tensor]:
        """Mean and max of ``h`` (B, C, F', T') over the ``count`` frames where ``valid`` (and over
        frequency too with ``pool_freq``), flattened."""
        if self.pool_freq:
            mean = (h * valid).sum((2, 3)) / (count * h.shape[2])[:, None]
            return [mean, h.masked_fill(~valid, float("-inf")).amax((2, 3))]
        mean = (h * valid).sum(3) / count[:, None, None]
        return [mean.flatten(1), h.masked_fill(~valid, float("-inf")).amax(3).flatten(1)]

    def head(self, h: Tensor, n: Tensor, pitch: Tensor | None = None) -> ModelOutput:
        """The last map ``h`` (B, C, F', T') with ``n`` valid frames per item (and the pitch branch's
        features, :meth:`pitch`) → :class:`ModelOutput`."""
        n = n.clamp(1, h.shape[-1])
        cnn = h
        if self.rnn is not None:  # a bidirectional GRU over each item's valid frames (packed: no padding read)
            packed = pack_padded_sequence(h.flatten(1, 2).transpose(1, 2), n.cpu(), batch_first=True,
                                          enforce_sorted=False)
            seq, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=h.shape[-1])
            h = seq.transpose(1, 2)[:, :, None]                               # (B, 2 H, 1, T')
        frames = torch.arange(h.shape[-1], device=h.device)[None, :]
        pooled: list[Tensor] = []
        for s in range(self.time_segments):
            start = torch.minimum(n * s // self.time_segments, n - 1)
            end = torch.maximum(n * (s + 1) // self.time_segments, start + 1)
            valid = ((frames >= start[:, None]) & (frames < end[:, None]))[:, None, None, :]
            pooled += self._pool(h, valid, (end - start).to(h.dtype))
        if pitch is not None:
            pooled.append(pitch)
        u = torch.tanh(self.hash(self.embed(torch.cat(pooled, 1))))
        logits = self.classifier(straight_through_sign(u) if self.straight_through else u)
        if self.frame_head is None or not self.training:
            return ModelOutput(logits=logits, hash_features=u)
        frame_logits = self.frame_head(cnn.flatten(1, 2).transpose(1, 2))  # (B, T', C + 1)
        return ModelOutput(logits=logits, hash_features=u, frame_logits=frame_logits, frame_lengths=n)
