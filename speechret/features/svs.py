"""Paper C's time-sequence speech visualization (SVS) feature (§4.1 Definition 1, steps 1-5; §5.1).

One spectrogram image per ``alpha``-sample frame (every ``beta`` samples), colour-mapped and
resized to the ``w x h`` of §5.1 (155 x 77 on THCHS-30, 77 x 38 on AISHELL-3).
"""

from __future__ import annotations

import math

import matplotlib
import torch
import torch.nn.functional as F
from torch import Tensor

from speechret.features.base import FeatureExtractor, _make_window, lengths_to_mask, resize_weights

__all__ = ["SVS"]


# ----------------------------------------------------------------------------------------------
# paper C: time-sequence speech visualization (SVS)
# ----------------------------------------------------------------------------------------------


class SVS(FeatureExtractor):
    """Paper C time-sequence speech visualization feature (§4.1 Definition 1, steps 1-5; §5.1).

    1. Frame the speech into ``m`` frames of ``alpha`` samples every ``beta`` samples; the last
       frame is completed with zeros: ``m = 1 + ceil(max(n - alpha, 0) / beta)`` for ``n`` samples
       (a clip shorter than ``alpha`` gives one zero-padded frame).  ``max_frames`` caps ``m``.
    2. Multiply each frame by a Hanning window of ``alpha`` samples (``window_periodic=False``:
       ``np.hanning``, the symmetric window the paper's name suggests).
    3. Divide each frame by its maximum ``|x|`` (frames whose maximum is below ``eps`` are silent;
       they are left as zeros and rendered as the bottom of the colour scale).  This makes the
       feature invariant to gain.
    4. STFT inside the frame: window ``inner_window = alpha'`` samples (Hann, symmetric as
       matplotlib's ``specgram``), hop ``alpha' - gamma`` (``gamma = inner_overlap``), no centring
       (plain segmentation as ``specgram``/``scipy.signal.spectrogram``): ``1 + (alpha - alpha') //
       (alpha' - gamma)`` columns (61 with the defaults) of ``n_fft // 2 + 1`` bins (129).  The
       magnitude is put in dB (``20 log10``), referenced to the frame image's maximum
       (``ref="max"``, like a plot's automatic colour limits; ``ref="fixed"``: 0 dB = the largest
       magnitude a normalised frame can reach, ``sum(window)``) and clipped ``db_range`` dB below
       it (``None``: min-max of the image), then mapped to ``[0, 1]``.
       The ``w x h = 155 x 77`` image of §5.1 (``77 x 38`` for AISHELL-3) has width = time axis and
       height = frequency axis.  No integer ``alpha'``/``gamma`` gives exactly 155 x 77 bins, so
       the spectrogram is resized with (antialiased) bilinear interpolation to ``height x width`` —
       what saving a plotted spectrogram at that resolution does.  Low frequencies are at the
       bottom (last row), as in a plotted image; :meth:`row_of_frequency` gives the row of a tone.
       ``mode="rgb"``: colour-mapped through ``colormap`` (matplotlib's, sampled into a 256 x 3
       look-up table at construction, applied by a gather; matplotlib's 256-level quantisation);
       ``mode="magnitude"``: the ``[0, 1]`` value as one channel.
    5. The images in time order: output ``[B, m_max, C, height, width]``, zeros beyond each item's
       ``m``; ``feat_lengths = m``.

    Memory: ``C * height * width * 4`` bytes per frame — 143,220 B (140 KiB) for 3 x 77 x 155,
    35,112 B for 3 x 38 x 77; a clip of ``n`` samples has ``m = 1 + ceil((n - 8000) / 1000)``
    frames (16 frames/s at 16 kHz: 5 s -> 73 frames -> 10.5 MB in RGB).  Frames are processed
    ``chunk_frames`` at a time (only valid frames are computed).
    """

    #: SpecAugment masks whole frames of the sequence (``feat_lengths`` count them) and rows of
    #: each image; the rows run from high to low frequency
    time_dim, freq_dim, freq_ascending = 1, 3, False

    def __init__(
        self,
        sample_rate: int = 16000,
        alpha: int = 8000,
        beta: int = 1000,
        window: str = "hann",
        window_periodic: bool = False,
        inner_window: int = 256,
        inner_overlap: int = 128,
        inner_window_fn: str = "hann",
        inner_window_periodic: bool = False,
        inner_n_fft: int | None = None,
        inner_center: bool = False,
        width: int = 155,
        height: int = 77,
        mode: str = "rgb",
        colormap: str = "viridis",
        db_range: float | None = 80.0,
        ref: str = "max",
        max_frames: int | None = None,
        chunk_frames: int = 256,
        antialias: bool = True,
        eps: float = 1e-8,
        amin: float = 1e-10,
    ) -> None:
        super().__init__(
            sample_rate=sample_rate, alpha=alpha, beta=beta, window=window, window_periodic=window_periodic,
            inner_window=inner_window, inner_overlap=inner_overlap, inner_window_fn=inner_window_fn,
            inner_window_periodic=inner_window_periodic, inner_n_fft=inner_n_fft, inner_center=inner_center,
            width=width, height=height, mode=mode, colormap=colormap, db_range=db_range, ref=ref,
            max_frames=max_frames, chunk_frames=chunk_frames, antialias=antialias, eps=eps, amin=amin,
        )
        if mode not in ("rgb", "magnitude"):
            raise ValueError(f"mode must be 'rgb' or 'magnitude', not {mode!r}")
        if ref not in ("max", "fixed"):
            raise ValueError(f"ref must be 'max' or 'fixed', not {ref!r}")
        if not 0 <= inner_overlap < inner_window <= alpha:
            raise ValueError("need 0 <= inner_overlap < inner_window <= alpha")
        self.sample_rate, self.alpha, self.beta = sample_rate, alpha, beta
        self.inner_window, self.inner_hop = inner_window, inner_window - inner_overlap
        self.n_fft = inner_n_fft or inner_window
        if self.n_fft < inner_window:
            raise ValueError("inner_n_fft must be >= inner_window")
        self.inner_center = inner_center
        self.width, self.height, self.mode = width, height, mode
        self.db_range, self.ref, self.max_frames = db_range, ref, max_frames
        self.chunk_frames, self.eps, self.amin = max(1, int(chunk_frames)), eps, amin
        self.channels = 3 if mode == "rgb" else 1
        self.feature_dim = self.channels
        self.register_buffer("window", _make_window(window, alpha, periodic=window_periodic), persistent=False)
        iw = _make_window(inner_window_fn, inner_window, periodic=inner_window_periodic)
        self.register_buffer("inner_win", iw, persistent=False)
        self.n_freq = self.n_fft // 2 + 1
        if inner_center:
            self.n_cols = 1 + alpha // self.inner_hop
        else:
            self.n_cols = 1 + (alpha - inner_window) // self.inner_hop
        # rows: frequency, flipped so that DC is the last row
        fw = resize_weights(height, torch.tensor([self.n_freq]), self.n_freq, antialias=antialias)[0].flip(0)
        tw = resize_weights(width, torch.tensor([self.n_cols]), self.n_cols, antialias=antialias)[0]
        self.register_buffer("freq_resize", fw, persistent=False)  # [height, n_freq]
        self.register_buffer("time_resize_t", tw.t().contiguous(), persistent=False)  # [n_cols, width]
        if mode == "rgb":
            cmap = matplotlib.colormaps[colormap]
            lut = torch.tensor(cmap(torch.linspace(0, 1, 256).numpy())[:, :3], dtype=torch.float32)
        else:
            lut = torch.empty(0)
        self.register_buffer("lut", lut, persistent=False)  # [256, 3]

    # -- shapes -----------------------------------------------------------------------------------
    def num_frames(self, n_samples: int) -> int:
        m = 1 + math.ceil(max(n_samples - self.alpha, 0) / self.beta)
        return min(m, self.max_frames) if self.max_frames else m

    def frame_counts(self, lengths: Tensor) -> Tensor:
        """``m`` per item (step 1) from sample lengths."""
        m = 1 + torch.div((lengths - self.alpha).clamp(min=0) + self.beta - 1, self.beta, rounding_mode="floor")
        return m.clamp(max=self.max_frames) if self.max_frames else m

    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        return (self.num_frames(n_samples), self.channels, self.height, self.width)

    def bytes_per_frame(self) -> int:
        return self.channels * self.height * self.width * 4

    def row_of_frequency(self, hz: float) -> float:
        """Image row (0 = top) at which a tone of ``hz`` lands (fractional)."""
        k = hz * self.n_fft / self.sample_rate  # FFT bin
        u = (k + 0.5) * self.height / self.n_freq - 0.5  # row counted from the bottom
        return self.height - 1 - u

    # -- transform --------------------------------------------------------------------------------
    def frame_values(self, frames: Tensor) -> Tensor:
        """Steps 2-4 for a flat batch of raw frames ``[N, alpha]`` -> resized ``[0, 1]`` spectrogram
        images ``[N, height, width]`` (before the colormap)."""
        x = frames * self.window  # step 2
        peak = x.abs().amax(dim=1, keepdim=True)  # step 3
        silent = peak <= self.eps
        x = x / peak.clamp(min=self.eps)
        spec = torch.stft(  # step 4
            x, n_fft=self.n_fft, hop_length=self.inner_hop, win_length=self.inner_window, window=self.inner_win,
            center=self.inner_center, pad_mode="constant", return_complex=True,
        )  # [N, n_freq, n_cols]
        # 20 log10 |X| computed as 10 log10 |X|^2 (no square root)
        db = 10.0 * torch.log10((spec.real.square() + spec.imag.square()).clamp(min=self.amin**2))
        if self.ref == "max":
            top = db.flatten(1).amax(1)[:, None, None]
        else:
            top = torch.full_like(db[:, :1, :1], 20.0 * math.log10(float(self.inner_win.sum())))
        if self.db_range is None:
            bot = db.flatten(1).amin(1)[:, None, None]
            v = (db - bot) / (top - bot).clamp(min=1e-6)
        else:
            v = (db - top + float(self.db_range)) / float(self.db_range)
        v = v.clamp(0.0, 1.0).masked_fill(silent[:, :, None], 0.0)
        img = torch.matmul(torch.matmul(self.freq_resize, v), self.time_resize_t)  # [N, H, W]
        return img.clamp_(0.0, 1.0)

    def _lut_index(self, img: Tensor) -> Tensor:
        # matplotlib's quantisation of [0, 1] into the 256 entries of the look-up table
        return (img * 256).to(torch.long).clamp_(0, 255).view(-1)

    def frame_images(self, frames: Tensor) -> Tensor:
        """Steps 2-4 for a flat batch of raw frames ``[N, alpha]`` -> ``[N, C, height, width]``."""
        img = self.frame_values(frames)
        if self.mode == "magnitude":
            return img[:, None]
        idx = self._lut_index(img)
        rgb = torch.stack([self.lut[:, c].index_select(0, idx) for c in range(3)], dim=0)
        return rgb.view(3, *img.shape).transpose(0, 1)

    def _forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        B, T = wave.shape
        m = self.frame_counts(lengths)
        m_max = int(m.max().item()) if B else 0
        need = self.alpha + (max(m_max, 1) - 1) * self.beta
        if T < need:
            wave = F.pad(wave, (0, need - T))  # step 1: last frame zero-padded (wave is 0 past lengths)
        frames = wave.unfold(1, self.alpha, self.beta)[:, :m_max]  # view [B, m_max, alpha]
        valid = lengths_to_mask(m, m_max)
        # the output is the bulk of the memory traffic: allocate it once, zero only the padding and
        # write each colour plane in place (no [N, H, W, 3] gather, no stack, no full zero fill)
        out = wave.new_empty(B, m_max, self.channels, self.height, self.width)
        out[~valid] = 0.0
        bi, fi = valid.nonzero(as_tuple=True)
        for s in range(0, bi.numel(), self.chunk_frames):  # step 5: frames in time order
            b, f = bi[s : s + self.chunk_frames], fi[s : s + self.chunk_frames]
            img = self.frame_values(frames[b, f])
            if self.mode == "magnitude":
                out[:, :, 0][b, f] = img
                continue
            idx = self._lut_index(img)
            for c in range(3):
                out[:, :, c][b, f] = self.lut[:, c].index_select(0, idx).view_as(img)
        return out, m
