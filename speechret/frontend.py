"""Audio front end shared by training, indexing, search and evaluation: silence trimming.

:class:`SilenceTrim` is an energy-based endpoint detector (the classic short-time-energy method,
Rabiner & Sambur, "An algorithm for determining the endpoints of isolated utterances", Bell Syst.
Tech. J. 54(2), 1975, reduced to its energy threshold): frame energies in dB over ``frame_ms``
windows every ``hop_ms``; a frame is speech when its energy is within ``threshold_db`` of the
item's loudest frame and above the absolute floor ``floor_db`` (dBFS). The item keeps the span
from the first to the last speech frame, widened by ``margin_ms`` on both sides, moved to the
start of the row; the rest of the row is zero. An item with no speech frame, or whose kept span
would be shorter than ``min_seconds``, is left as it is.

Choices (not from the papers, which do not trim): the threshold is relative to the item's
maximum so that gain does not move the endpoints; only leading and trailing silence is removed
(pauses inside an utterance are kept, so multi-word keyword queries keep their timing).

The module is batched and runs on the batch's device; ``forward(wave (B, T), lengths (B,))``
returns ``(wave, lengths)``. It is deterministic and active in ``eval()`` mode too: it is part of
the one audio → code path (:meth:`speechret.data.datamodule.SpeechDataModule.prepare_batch` and
:class:`speechret.hashing.hasher.Hasher` both run the ``frontend`` of the run config), so library codes
and query codes are always made the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SilenceTrim"]


class SilenceTrim(nn.Module):
    """Energy-based removal of leading and trailing silence (see the module docstring).

    Args:
        sample_rate: audio rate in Hz.
        frame_ms / hop_ms: analysis window and step.
        threshold_db: a frame is speech when its energy is at least ``max - threshold_db`` dB.
        floor_db: and at least this many dB relative to full scale (a ±1 sine is -3 dBFS).
        margin_ms: silence kept before the first and after the last speech frame.
        min_seconds: never trim an item to less than this.
    """

    def __init__(self, sample_rate: int = 16000, frame_ms: float = 25.0, hop_ms: float = 10.0,
                 threshold_db: float = 40.0, floor_db: float = -60.0, margin_ms: float = 50.0,
                 min_seconds: float = 0.1) -> None:
        super().__init__()
        if threshold_db <= 0:
            raise ValueError(f"SilenceTrim.threshold_db must be positive, got {threshold_db}")
        self.sample_rate = int(sample_rate)
        self.frame = max(1, int(round(frame_ms * sample_rate / 1000)))
        self.hop = max(1, int(round(hop_ms * sample_rate / 1000)))
        if self.hop > self.frame:
            raise ValueError(f"SilenceTrim: hop_ms {hop_ms} longer than frame_ms {frame_ms}")
        self.threshold_db = float(threshold_db)
        self.floor_db = float(floor_db)
        self.margin = int(round(margin_ms * sample_rate / 1000))
        self.min_len = int(round(min_seconds * sample_rate))

    def spans(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``(start, end)`` sample indices of the kept span of each item."""
        b, n = wave.shape
        valid = torch.arange(n, device=wave.device)[None, :] < lengths[:, None]
        x = (wave.float() * valid).pow(2)
        pad = (-(n - self.frame) % self.hop) if n > self.frame else self.frame - n
        x = F.pad(x, (0, pad))
        energy = x.unfold(1, self.frame, self.hop).mean(-1)  # (B, n_frames)
        starts = torch.arange(energy.shape[1], device=wave.device) * self.hop
        in_item = starts[None, :] < lengths[:, None]
        db = 10 * torch.log10(energy.clamp_min(1e-12))
        db = torch.where(in_item, db, torch.full_like(db, -240.0))
        peak = db.max(1, keepdim=True).values
        speech = in_item & (db >= peak - self.threshold_db) & (db >= self.floor_db)
        any_speech = speech.any(1)
        idx = torch.arange(energy.shape[1], device=wave.device)[None, :].expand_as(speech)
        first = torch.where(speech, idx, torch.full_like(idx, energy.shape[1])).min(1).values
        last = torch.where(speech, idx, torch.full_like(idx, -1)).max(1).values
        start = (first * self.hop - self.margin).clamp_min(0)
        end = torch.minimum(last * self.hop + self.frame + self.margin, lengths)
        keep_whole = ~any_speech | (end - start < torch.clamp(lengths, max=self.min_len))
        start = torch.where(keep_whole, torch.zeros_like(start), start)
        end = torch.where(keep_whole, lengths, end)
        return start, end

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if wave.ndim != 2:
            raise ValueError(f"SilenceTrim takes a (B, T) waveform batch, got shape {tuple(wave.shape)}")
        b, n = wave.shape
        lens = (torch.full((b,), n, dtype=torch.long, device=wave.device) if lengths is None
                else torch.as_tensor(lengths, device=wave.device).long().reshape(-1))
        if b == 0 or n == 0:
            return wave, lens
        start, end = self.spans(wave, lens)
        new_len = end - start
        n_out = int(new_len.max().item())
        src = (torch.arange(n_out, device=wave.device)[None, :] + start[:, None]).clamp_max(n - 1)
        keep = torch.arange(n_out, device=wave.device)[None, :] < new_len[:, None]
        return torch.gather(wave, 1, src) * keep, new_len

    def extra_repr(self) -> str:
        return (f"frame={self.frame}, hop={self.hop}, threshold_db={self.threshold_db}, "
                f"floor_db={self.floor_db}, margin={self.margin}")
