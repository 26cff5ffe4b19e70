"""Paper B's 224 x 224 x 3 Log-Mel "image" (§III-A steps 1-5, eq. (1)-(7); §IV-E step 1).

The log-mel of :class:`speechret.features.mel._MelFrontEnd` (pre-emphasis, Hamming frames,
``n_fft=1024``, ``hop=512``, 128 mel bands, dB), stacked with its deltas and resized per item to the
CNN's input size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from speechret.features.base import FeatureExtractor, _deltas, fix_length, resize_weights
from speechret.features.mel import _MelFrontEnd

__all__ = ["LogMelImage"]


# ----------------------------------------------------------------------------------------------
# paper B: 224 x 224 x 3 Log-Mel image
# ----------------------------------------------------------------------------------------------


class LogMelImage(FeatureExtractor):
    """Paper B Log-Mel "image" (§III-A steps 1-5, eq. (1)-(7); §IV-E step 1): pre-emphasis 0.97,
    Hamming frames, ``n_fft=1024``, ``hop=512``, 128 mel bands, log -> ``[B, 3, 224, 224]``.

    Choices where the paper is silent (all configurable):

    * log = dB (``10 log10``, ``ref=1.0``, ``top_db=80`` per item): eq. (7) only says "log"; the
      base is irrelevant after normalisation, ``top_db`` keeps digital silence from dominating it.
    * window length = ``n_fft`` (librosa's default ``win_length``), periodic Hamming, centred frames.
    * channels: ``"delta"`` (default) = static log-mel, its delta and delta-delta (HTK regression
      over ``delta_width=9`` frames, librosa's width, replicate edges), the common 3-channel log-mel;
      ``"repeat"`` = the log-mel copied thrice, a grey image fed to an RGB CNN.
    * resize: each item's *valid* log-mel frames (``[128, n_frames]``, ``n_frames = 1 + n // 512``)
      are resized bilinearly (``align_corners=False``; antialiased when shrinking) to
      ``image_size`` (rows = mel bands, row 0 = lowest band; columns = time), so a clip of any
      duration fills the image.  ``fixed_seconds`` pads/crops to a fixed duration first (as
      :class:`LogMel`), so that the time scale is the same for every item.
    * normalisation per item and channel: ``"minmax"`` (default) to ``[0, 1]`` like an image,
      ``"standardize"`` to zero mean / unit variance, or ``"none"``.

    The returned lengths are the image width (all columns are valid).
    """

    time_dim, freq_dim = 3, 2  # [B, 3, mel, time]

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop: int = 512,
        win_length: int | None = None,
        n_mels: int = 128,
        window: str = "hamming",
        pre_emphasis: float | None = 0.97,
        image_size: int | tuple[int, int] | list[int] = 224,
        channels: str = "delta",
        delta_width: int = 9,
        normalize: str = "minmax",
        fixed_seconds: float | None = None,
        pad_mode: str = "zero",
        crop: str = "start",
        center: bool = True,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: str = "slaney",
        mel_norm: str | None = "slaney",
        ref: float | str = 1.0,
        amin: float = 1e-10,
        top_db: float | None = 80.0,
        antialias: bool = True,
        eps: float = 1e-6,
    ) -> None:
        if isinstance(image_size, int):
            size = (image_size, image_size)
        else:
            size = (int(image_size[0]), int(image_size[1]))
        super().__init__(
            sample_rate=sample_rate, n_fft=n_fft, hop=hop, win_length=win_length, n_mels=n_mels, window=window,
            pre_emphasis=pre_emphasis, image_size=list(size), channels=channels, delta_width=delta_width,
            normalize=normalize, fixed_seconds=fixed_seconds, pad_mode=pad_mode, crop=crop, center=center,
            f_min=f_min, f_max=f_max, mel_scale=mel_scale, mel_norm=mel_norm, ref=ref, amin=amin, top_db=top_db,
            antialias=antialias, eps=eps,
        )
        if channels not in ("delta", "repeat"):
            raise ValueError(f"channels must be 'delta' or 'repeat', not {channels!r}")
        if normalize not in ("minmax", "standardize", "none"):
            raise ValueError(f"normalize must be minmax|standardize|none, not {normalize!r}")
        if pad_mode not in ("zero", "repeat") or crop not in ("start", "center"):
            raise ValueError(f"pad_mode must be zero|repeat and crop start|center, got {pad_mode!r}, {crop!r}")
        self.size = size
        self.channels, self.delta_width, self.normalize = channels, delta_width, normalize
        self.fixed_samples = None if fixed_seconds is None else int(round(fixed_seconds * sample_rate))
        self.pad_mode, self.crop, self.antialias, self.eps = pad_mode, crop, antialias, eps
        self.frontend = _MelFrontEnd(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length or n_fft, hop_length=hop, n_mels=n_mels,
            window=window, center=center, f_min=f_min, f_max=f_max, mel_scale=mel_scale, mel_norm=mel_norm,
            pre_emphasis=pre_emphasis, ref=ref, amin=amin, top_db=top_db,
        )
        fw = resize_weights(size[0], torch.tensor([n_mels]), n_mels, antialias=antialias)[0]
        self.register_buffer("freq_resize", fw, persistent=False)  # [H, n_mels]
        self.feature_dim = 3

    def num_frames(self, n_samples: int) -> int:
        return self.size[1]

    def mel_frames(self, n_samples: int) -> int:
        """Number of log-mel frames resized into the image for a clip of ``n_samples``."""
        return self.frontend.num_frames(self.fixed_samples if self.fixed_samples is not None else n_samples)

    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        return (3, *self.size)

    def _forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if self.fixed_samples is not None:
            wave = fix_length(wave, lengths, self.fixed_samples, pad_mode=self.pad_mode, crop=self.crop)
            lengths = torch.full_like(lengths, self.fixed_samples)
        db, flen = self.frontend(wave, lengths)  # [B, M, F]
        if self.channels == "delta":
            x = torch.stack(_deltas(db, flen, 2, self.delta_width), dim=1)  # [B, 3, M, F]
        else:
            x = db[:, None].expand(-1, 3, -1, -1)
        B, C, M, Fr = x.shape
        tw = resize_weights(self.size[1], flen, Fr, antialias=self.antialias)  # [B, W, F]
        img = torch.matmul(self.freq_resize, x)  # [B, 3, H, F]
        img = torch.matmul(img, tw.transpose(1, 2)[:, None])  # [B, 3, H, W]
        if self.normalize == "minmax":
            lo = img.amin(dim=(2, 3), keepdim=True)
            hi = img.amax(dim=(2, 3), keepdim=True)
            img = (img - lo) / (hi - lo).clamp(min=self.eps)
        elif self.normalize == "standardize":
            mu = img.mean(dim=(2, 3), keepdim=True)
            sd = img.std(dim=(2, 3), keepdim=True, unbiased=False)
            img = (img - mu) / sd.clamp(min=self.eps)
        return img.contiguous(), torch.full_like(lengths, self.size[1])
