"""Audio front end shared by training, indexing, search and evaluation: silence trimming, and the
test-time speed views of :class:`SpeedViews` (codes made from several speeds of each clip).

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

``max_gap_ms`` (off by default) keeps only the utterance around the loudest frame: speech frames
separated by at most ``max_gap_ms`` of non-speech are joined into one region, and the region that
holds the loudest frame is the span; events further away (the click of a recorder's button, a
breath or a cough after the word) are trimmed with the silence.  This is the isolated-word
endpoint rule of Lamel, Rabiner, Rosenberg & Wilpon ("An improved endpoint detector for isolated
word recognition", IEEE Trans. ASSP 29(4), 1981: energy pulses are joined across short gaps and a
word is the pulse group around the energy maximum).  The gap must exceed the longest pause inside
a word or query (a stop closure is about 100 ms); for keyword queries of several words leave it off.
On DSPSpeech-20's 2 s clips the rule without it kept 0.9-1.9 s of each (recorder clicks and breath
at 30-45 dB below the word's peak count as speech), about twice the word.

``region="energy"`` (``"peak"`` by default) takes, of those regions, the one whose speech frames
hold the most energy instead of the one holding the loudest frame.  A recorder's click can be
louder at its peak than the word and hold far less energy: on DSPSpeech-20, 10 of 16307130198's
160 clips open with a click 0.2-3 dB above the word's peak, and the peak rule kept the click alone
(0.17-0.20 s with the margins), which held 14-46 % of the word's energy; 27 of the corpus's 3840
clips change span by more than 50 ms.  (Choosing by energy is speechret's variant of the rule above.)

``join_gap_ms`` (off by default) lets a slow voice's syllables stay together without widening the
gap for every voice: once the word's region is chosen, its neighbouring region on each side (one
each side, the regions of ``max_gap_ms``) joins it when the silence between them is at most
``join_gap_ms``, its speech frames hold at least ``join_share`` of the word region's energy, and
its speech frames span at least ``join_min_ms`` (a syllable, not a click).  A plain wider
``max_gap_ms`` chains every pulse within reach -- clicks and breaths as well.  On DSPSpeech-20,
16307130260 leaves 0.3-0.4 s between the two syllables of some words, and the 200 ms gap kept one
of them (9 of fold 1's 19 misclassified validation items).  Joining a neighbour by its share of
the energy is speechret's variant of Lamel et al.'s pulse grouping, whose groups are also chosen
by their energy.

``noise_percentile`` / ``noise_margin_db`` (off by default) make the rule hold under a raised noise
floor: the item's noise level is estimated as the ``noise_percentile``-th percentile of the
energies of its frames lying wholly inside it (the quietest frames of a clip that is mostly
silence; a partial last frame would differ between a lone clip and the same clip padded in a
batch), and a speech frame must also
stand ``noise_margin_db`` above it -- the noise-statistics threshold of Rabiner & Sambur (1975),
there from the first 100 ms, here from the quietest frames wherever they lie.  ``remove_dc``
subtracts each item's mean before the energies (the kept samples are not changed).  Without them
the peak-relative rule trims nothing once the noise floor rises within ``threshold_db`` of the
peak: on DSPSpeech-20's validation speakers, 16 -> 8 -> 16-bit re-quantization (an offset of half
a coarse step, about -54 dBFS, on every sample) moved the kept span of every word by 0.94 s on
average, and Gaussian noise at 30 dB SNR moved 65 % of them by more than 50 ms, so the code of a
lightly degraded copy was that of a different crop.

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

from speechret.augment import speed_change, speed_ratio, speed_steps
from speechret.torchaudio_api import resample

__all__ = ["ClipViews", "SilenceTrim", "SpeedViews"]


class SilenceTrim(nn.Module):
    """Energy-based removal of leading and trailing silence (see the module docstring).

    Args:
        sample_rate: audio rate in Hz.
        frame_ms / hop_ms: analysis window and step.
        threshold_db: a frame is speech when its energy is at least ``max - threshold_db`` dB.
        floor_db: and at least this many dB relative to full scale (a ±1 sine is -3 dBFS).
        margin_ms: silence kept before the first and after the last speech frame.
        min_seconds: never trim an item to less than this.
        max_gap_ms: ``None`` (default) keeps everything from the first to the last speech frame;
            a number keeps only the region around the loudest frame whose internal non-speech
            gaps are at most this long (see the module docstring).
        noise_percentile: ``None`` (default) or a percentile in [0, 100) of the energies of the
            item's whole frames, taken as its noise level (see the module docstring).
        noise_margin_db: with ``noise_percentile``, a speech frame is also at least this many dB
            above the noise level.
        remove_dc: subtract each item's mean (over its valid samples) before the frame energies.
        region: with ``max_gap_ms``, which region is kept: ``"peak"`` (the one holding the loudest
            frame) or ``"energy"`` (the one whose speech frames hold the most energy; see the
            module docstring).
        join_gap_ms: with ``max_gap_ms``, ``None`` (default) or the longest silence across which
            the word region's neighbour on each side joins it (see the module docstring); at
            least ``max_gap_ms``.
        join_share: a joining neighbour's speech energy is at least this fraction of the word
            region's.
        join_min_ms: a joining neighbour's speech frames (first to last) span at least this long.
    """

    def __init__(self, sample_rate: int = 16000, frame_ms: float = 25.0, hop_ms: float = 10.0,
                 threshold_db: float = 40.0, floor_db: float = -60.0, margin_ms: float = 50.0,
                 min_seconds: float = 0.1, max_gap_ms: float | None = None,
                 noise_percentile: float | None = None, noise_margin_db: float = 10.0,
                 remove_dc: bool = False, region: str = "peak", join_gap_ms: float | None = None,
                 join_share: float = 0.25, join_min_ms: float = 80.0) -> None:
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
        if max_gap_ms is not None and max_gap_ms < 0:
            raise ValueError(f"SilenceTrim.max_gap_ms must be >= 0 or null, got {max_gap_ms}")
        # gaps are counted in hops: a gap of g non-speech frames spans about g * hop samples
        self.max_gap = None if max_gap_ms is None else int(round(max_gap_ms / hop_ms))
        if noise_percentile is not None and not 0.0 <= noise_percentile < 100.0:
            raise ValueError(f"SilenceTrim.noise_percentile must lie in [0, 100) or be null, got {noise_percentile}")
        self.noise_percentile = None if noise_percentile is None else float(noise_percentile)
        self.noise_margin_db = float(noise_margin_db)
        self.remove_dc = bool(remove_dc)
        if region not in ("peak", "energy"):
            raise ValueError(f"SilenceTrim.region must be 'peak' or 'energy', got {region!r}")
        self.region = region
        if join_gap_ms is not None and (max_gap_ms is None or join_gap_ms < max_gap_ms):
            raise ValueError(f"SilenceTrim.join_gap_ms ({join_gap_ms}) needs max_gap_ms and must be at least "
                             f"it (max_gap_ms={max_gap_ms})")
        if not join_share >= 0.0:  # NaN too
            raise ValueError(f"SilenceTrim.join_share must be >= 0, got {join_share}")
        if join_min_ms < 0:
            raise ValueError(f"SilenceTrim.join_min_ms must be >= 0, got {join_min_ms}")
        self.join_gap = None if join_gap_ms is None else int(round(join_gap_ms / hop_ms))
        self.join_share = float(join_share)
        self.join_min = int(round(join_min_ms / hop_ms))

    def spans(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``(start, end)`` sample indices of the kept span of each item."""
        b, n = wave.shape
        valid = torch.arange(n, device=wave.device)[None, :] < lengths[:, None]
        x = wave.float() * valid
        if self.remove_dc:
            # in float64: the mean must not depend on how much padding the sum ran over (a batch
            # and a lone clip give the same endpoints; the exported hasher is checked bit for bit)
            dc = x.double().sum(1, keepdim=True) / lengths.clamp_min(1)[:, None]
            x = (x - dc.to(x.dtype)) * valid
        x = x.pow(2)
        pad = (-(n - self.frame) % self.hop) if n > self.frame else self.frame - n
        x = F.pad(x, (0, pad))
        energy = x.unfold(1, self.frame, self.hop).mean(-1)  # (B, n_frames)
        starts = torch.arange(energy.shape[1], device=wave.device) * self.hop
        in_item = starts[None, :] < lengths[:, None]
        db = 10 * torch.log10(energy.clamp_min(1e-12))
        db = torch.where(in_item, db, torch.full_like(db, -240.0))
        peak = db.max(1, keepdim=True).values
        speech = in_item & (db >= peak - self.threshold_db) & (db >= self.floor_db)
        if self.noise_percentile is not None:
            # the percentile over the frames lying wholly inside the item (the frames a lone clip
            # and the same clip padded in a batch share); the others sort last
            whole = (starts[None, :] + self.frame) <= lengths[:, None]
            n_frames = whole.sum(1).clamp_min(1)
            ranked = torch.where(whole, db, torch.full_like(db, float("inf"))).sort(1).values
            k = ((n_frames - 1).to(db.dtype) * self.noise_percentile / 100.0).round().long()
            noise = ranked.gather(1, k[:, None])
            speech = speech & (db >= noise + self.noise_margin_db)
        any_speech = speech.any(1)
        idx = torch.arange(energy.shape[1], device=wave.device)[None, :].expand_as(speech)
        if self.max_gap is not None:
            speech = self._word_region(speech, idx, db, energy)
        first = torch.where(speech, idx, torch.full_like(idx, energy.shape[1])).min(1).values
        last = torch.where(speech, idx, torch.full_like(idx, -1)).max(1).values
        start = (first * self.hop - self.margin).clamp_min(0)
        end = torch.minimum(last * self.hop + self.frame + self.margin, lengths)
        keep_whole = ~any_speech | (end - start < torch.clamp(lengths, max=self.min_len))
        start = torch.where(keep_whole, torch.zeros_like(start), start)
        end = torch.where(keep_whole, lengths, end)
        return start, end

    def _word_region(self, speech: Tensor, idx: Tensor, db: Tensor, energy: Tensor) -> Tensor:
        """The speech frames of one region -- runs of speech joined across gaps of at most
        ``max_gap`` frames (batched: previous / next speech frame by cummax) -- the region holding
        the loudest frame of ``db`` (``region="peak"``) or the one whose speech frames hold the most
        ``energy`` (``region="energy"``); with ``join_gap``, joined by its neighbours that qualify."""
        n = speech.shape[1]
        prev = torch.where(speech, idx, torch.full_like(idx, -n - 1)).cummax(1).values
        nxt = n - 1 - torch.where(speech, n - 1 - idx, torch.full_like(idx, -n - 1)).flip(1).cummax(1).values.flip(1)
        bridged = ~speech & (prev >= 0) & (nxt < n) & (nxt - prev - 1 <= self.max_gap)
        filled = speech | bridged
        starts = filled & ~F.pad(filled[:, :-1], (1, 0), value=False)
        region = starts.long().cumsum(1)  # 0 before the first region, then 1, 2, ...
        held = None
        if self.region == "energy" or self.join_gap is not None:
            # float64 sums: the same choice for a lone clip and for the clip in a padded batch
            held = F.pad(torch.zeros_like(energy, dtype=torch.float64), (0, 1))  # region ids 0 .. n
            held.scatter_add_(1, region, torch.where(speech, energy, torch.zeros_like(energy)).double())
        if self.region == "energy":
            mine = held[:, 1:].argmax(1, keepdim=True) + 1
        else:
            mine = region.gather(1, db.argmax(1, keepdim=True))
        keep = region == mine
        if self.join_gap is not None:
            keep = keep | self._joined_neighbours(speech, idx, region, held, mine)
        return speech & keep

    def _joined_neighbours(self, speech: Tensor, idx: Tensor, region: Tensor, held: Tensor, mine: Tensor) -> Tensor:
        """Frames of the regions ``mine - 1`` and ``mine + 1`` that join the word (``join_gap``,
        ``join_share``, ``join_min``); region bounds are their first and last speech frames."""
        n = speech.shape[1]
        ids = F.pad(idx, (0, 1))  # (B, n + 1): one slot per region id 0 .. n
        first = torch.full_like(ids, n).scatter_reduce(1, region, torch.where(speech, idx, torch.full_like(idx, n)),
                                                       "amin")
        last = torch.full_like(ids, -1).scatter_reduce(1, region, torch.where(speech, idx, torch.full_like(idx, -1)),
                                                       "amax")
        n_regions = region.max(1, keepdim=True).values
        word_energy = held.gather(1, mine)
        joined = torch.zeros_like(speech)
        for side in (-1, 1):
            other = (mine + side).clamp(0, n)
            exists = (mine + side >= 1) & (mine + side <= n_regions)
            if side < 0:
                gap = first.gather(1, mine) - last.gather(1, other) - 1
            else:
                gap = first.gather(1, other) - last.gather(1, mine) - 1
            span = last.gather(1, other) - first.gather(1, other) + 1
            join = (exists & (gap <= self.join_gap) & (span >= self.join_min)
                    & (held.gather(1, other) >= self.join_share * word_energy))
            joined = joined | (join & (region == other))
        return joined

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
                f"floor_db={self.floor_db}, margin={self.margin}, max_gap={self.max_gap}, "
                f"noise_percentile={self.noise_percentile}, noise_margin_db={self.noise_margin_db}, "
                f"remove_dc={self.remove_dc}, region={self.region!r}, join_gap={self.join_gap}, "
                f"join_share={self.join_share}, join_min={self.join_min}")


class SpeedViews(nn.Module):
    """Test-time views: each clip is coded from ``factors`` speed-perturbed copies of itself.

    Test-time augmentation (the multi-view averaging of Krizhevsky, Sutskever & Hinton, NIPS 2012
    §4.1, applied to the speed perturbation of Ko, Peddinti, Povey & Khudanpur, "Audio
    augmentation for speech recognition", Interspeech 2015, which speechret's recipe trains with):
    a voice the model never heard is heard at a few speeds -- each a shift of its formants and
    tempo -- and the code is the consensus of the views, so it depends less on where that voice
    sits in the vocal-tract-length range of the training speakers.  :meth:`forward` expands a
    batch ``(B, T)`` into ``B · V`` rows, item-major (item ``b``'s views are rows ``b·V .. b·V+V-1``,
    in the order of ``factors``); the hash method merges the ``V`` outputs of an item into one
    code (:meth:`speechret.hashing.HashMethod.codes_of_views`: the views' outputs are averaged and
    coded as one output -- for ``speechret``'s sign codes the sign of the mean relaxed (tanh)
    code, a soft vote of the views).

    Where it applies: wherever codes are made from audio by
    :class:`speechret.hashing.hasher.Hasher` (``index.py``, ``search.py``, ``evaluate.py``, the
    library and the demo), from the ``views`` node of the checkpoint's run config -- so library
    and query codes are made the same way.  The ``val/*`` and ``test/*`` mAPs logged by
    ``train.py`` are single-view (the LightningModule sees features, not audio).  Views cost ``V``
    times the encoding; :func:`speechret.export.export_hasher` puts them in the exported file
    (:meth:`clip_views`).

    Chosen on validation speakers (``bench/cross_speaker.py`` folds 0 / 1, 10 words, the ``[1, 2]``
    stem's 30-epoch checkpoints; the cross-speaker mAP of the validation speakers recomputed with
    the views): one view 0.948 / 0.909; this soft vote over 0.8 / 0.9 / 1.0 / 1.1 / 1.2 (the
    default, ``conf/views/speed5.yaml``) 0.955 / 0.925; a bitwise majority of the same views
    0.955 / 0.929.  A first sweep averaged ``tanh`` of the (already tanh) hash features, which
    down-weights confident views: 0.953 / 0.920 for 0.9 / 1.0 / 1.1, 0.960 / 0.927 for
    0.85 / 1.0 / 1.15, 0.958 / 0.941 for the five kept, 0.954 / 0.930 for seven in 0.05 steps
    over 0.85-1.15 -- the five were kept from it, the plain mean because it needs no extra
    squashing.  The same factors as a warp of the log-mel frequency axis (with or without
    stretching the frames) gained at most 0.006 and lost on fold 1: the views are made from the
    waveform.

    Args:
        factors: speeds (``> 1`` faster), each used as ``round(f · resolution) / resolution``;
            keep ``1.0`` among them and stay inside the training speed range.
        resolution: denominator of the resampling ratio (as :class:`speechret.augment.SpeedPerturb`).
    """

    def __init__(self, factors: tuple[float, ...] | list[float] = (0.8, 0.9, 1.0, 1.1, 1.2),
                 resolution: int = 100) -> None:
        super().__init__()
        self.resolution = int(resolution)
        self.steps = speed_steps(factors, self.resolution, "SpeedViews")
        if len(set(self.steps)) != len(self.steps):
            raise ValueError(f"SpeedViews.factors repeat a speed at resolution {self.resolution}: {factors}")

    @property
    def n_views(self) -> int:
        return len(self.steps)

    def forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        b, v = wave.shape[0], self.n_views
        step = torch.tensor(self.steps, device=wave.device).repeat(b)
        return speed_change(wave.repeat_interleave(v, 0), lengths.repeat_interleave(v, 0), step, self.resolution)

    @property
    def factors(self) -> list[float]:
        """The speeds played, as used (``step / resolution``), in order."""
        return [s / self.resolution for s in self.steps]

    def clip_views(self) -> ClipViews:
        """The same views of one clip, as a TorchScript-able module (:class:`ClipViews`)."""
        return ClipViews(self.steps, self.resolution)

    def extra_repr(self) -> str:
        return f"factors={self.factors}"


class ClipViews(nn.Module):
    """:class:`SpeedViews` of one clip ``(1, T)`` in a form ``torch.jit.script`` compiles (what
    :func:`speechret.export.export_hasher` puts in an exported hasher): view ``v`` is the clip
    resampled from ``orig[v]`` to ``new[v]``, the reduced ratio ``step / resolution`` that
    :func:`speechret.augment.speed_change` plays (``orig == new``: the clip itself), each
    ``ceil(T · new / orig)`` samples long; returns the views zero-padded into ``(V, T_max)`` and
    their lengths ``(V,)``, the rows :class:`SpeedViews` makes for a batch of one."""

    def __init__(self, steps: list[int], resolution: int) -> None:
        super().__init__()
        ratios = [speed_ratio(s, resolution) for s in steps]
        self.orig: list[int] = [a for a, _ in ratios]
        self.new: list[int] = [b for _, b in ratios]

    def forward(self, wave: Tensor) -> tuple[Tensor, Tensor]:
        views: list[Tensor] = []
        for i in range(len(self.orig)):
            views.append(wave if self.orig[i] == self.new[i] else resample(wave, self.orig[i], self.new[i]))
        lengths = torch.tensor([v.shape[1] for v in views], dtype=torch.long, device=wave.device)
        out = wave.new_zeros((len(views), int(lengths.max())))
        for i in range(len(views)):
            out[i, : views[i].shape[1]] = views[i][0]
        return out, lengths
