"""Hash-learning objectives beyond the papers, on the relaxed codes ``u ∈ (-1, 1)^K`` (tanh).

Each is an ``nn.Module`` ``loss(u (B, K), labels (B,), **inputs) -> scalar`` (a term names the
further inputs it needs in its ``inputs`` attribute: the batch's ``speakers``, the model
``output``, the pronunciation ``targets`` / ``target_lengths``); :class:`HashObjective` sums
weighted terms and is what a model config selects (``model.hash_objective``), beside the
classification cross-entropy of :class:`speechret.models.hash_modules.ClassificationHashModule`.

* :class:`CenterLoss` — central similarity quantization (CSQ: Yuan et al., "Central Similarity
  Quantization for Efficient Image and Video Retrieval", CVPR 2020, §3.2–3.3). Each class gets
  a hash centre ``c ∈ {-1, 1}^K``: rows of a Hadamard matrix and their negations when
  ``K`` is a power of two and ``2K ≥`` classes (mutual distance ``K/2``), otherwise Bernoulli(½)
  bits drawn with a fixed seed (§3.2). The loss is the bitwise binary cross-entropy between
  ``(u+1)/2`` and ``(c+1)/2`` (eq. 5) plus ``λ · Σ log cosh(|u| - 1)`` (eq. 6, quantization).
* :class:`PairwiseLikelihoodLoss` — DPSH (Li, Wang & Kang, "Feature Learning based Deep
  Supervised Hashing with Pairwise Labels", IJCAI 2016, eq. 4): with ``θ_ij = ½ u_iᵀu_j`` and
  ``s_ij = 1`` for the same label, ``-Σ (s_ij θ_ij - log(1 + e^θ_ij)) + η Σ ||b_i - u_i||²``,
  ``b = sign(u)``; averaged over pairs and items.
* :class:`TripletLoss` — batch-hard triplet loss (Hermans, Beyer & Leibe, "In Defense of the
  Triplet Loss for Person Re-Identification", 2017, eq. 5) on the relaxed normalized Hamming
  distance ``d(u, v) = (K - uᵀv) / 2K`` (equal to BER for binary codes): for each anchor, the
  farthest positive and the nearest negative, ``[m + d_ap - d_an]_+``; ``cross_speaker=True``
  takes the positives from other voices only (camera-aware mining carried over to speakers).
* :class:`SpeakerAdversaryLoss` — speaker-invariant codes by adversarial training: a speaker
  classifier on the relaxed code behind a gradient-reversal layer (Ganin & Lempitsky,
  "Unsupervised Domain Adaptation by Backpropagation", ICML 2015, §3.2 eq. 13; applied to
  speakers by Meng et al., "Speaker-Invariant Training via Adversarial Learning", ICASSP 2018,
  eq. 5-7). The classifier learns the training speakers; the encoder receives the reversed
  gradient, ``-scale ×`` the classifier's, and so removes what tells the voices apart.
* :class:`FrameCTCLoss` — an auxiliary CTC target on a per-frame head of the net (multi-task
  CTC: Kim, Hori & Watanabe, "Joint CTC-Attention Based End-to-End Speech Recognition Using
  Multi-Task Learning", ICASSP 2017, eq. 12, a weighted sum of the main loss and CTC; CTC itself:
  Graves et al., "Connectionist Temporal Classification", ICML 2006, eq. 14), on the batch's
  pronunciation targets (paper C's 27 initial classes, :mod:`speechret.data.pronunciation`).
* :class:`BitBalanceLoss` — each bit is +1 on half of the items (the balance constraint of
  spectral hashing: Weiss, Torralba & Fergus, "Spectral Hashing", NIPS 2008, eq. 3), relaxed to
  ``mean_k (mean_i u_ik)²``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["hash_centers", "CenterLoss", "PairwiseLikelihoodLoss", "TripletLoss", "BitBalanceLoss",
           "SpeakerAdversaryLoss", "GradientReversal", "FrameCTCLoss", "HashObjective"]


def _hadamard(n: int) -> Tensor:
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def hash_centers(n_classes: int, n_bits: int, kind: str = "auto", seed: int = 0) -> Tensor:
    """``(n_classes, n_bits)`` centres in {-1, 1} (CSQ §3.2).

    ``kind="hadamard"``: rows of the ``n_bits``×``n_bits`` Hadamard matrix, then their negations
    (needs ``n_bits`` a power of two and ``n_classes ≤ 2·n_bits``); ``"random"``: Bernoulli(½)
    bits from a generator seeded with ``seed``; ``"auto"``: Hadamard when possible.
    """
    if n_classes < 1 or n_bits < 1:
        raise ValueError(f"hash_centers needs n_classes, n_bits >= 1, got {n_classes}, {n_bits}")
    pow2 = n_bits & (n_bits - 1) == 0
    if kind == "auto":
        kind = "hadamard" if pow2 and n_classes <= 2 * n_bits else "random"
    if kind == "hadamard":
        if not pow2 or n_classes > 2 * n_bits:
            raise ValueError(f"Hadamard centres need a power-of-two width >= classes/2, got {n_bits} bits "
                             f"for {n_classes} classes")
        h = _hadamard(n_bits)
        return torch.cat([h, -h], 0)[:n_classes].clone()
    if kind == "random":
        g = torch.Generator().manual_seed(int(seed))
        return torch.randint(0, 2, (n_classes, n_bits), generator=g).float() * 2 - 1
    raise ValueError(f"hash_centers kind must be auto, hadamard or random, got {kind!r}")


class CenterLoss(nn.Module):
    """CSQ hash-centre loss (eq. 5) with the log-cosh quantization term (eq. 6) weighted ``quantization``."""

    def __init__(self, n_classes: int, n_bits: int, centers: str = "auto", quantization: float = 1e-4,
                 seed: int = 0) -> None:
        super().__init__()
        self.register_buffer("centers", hash_centers(n_classes, n_bits, centers, seed))
        self.quantization = float(quantization)

    def forward(self, u: Tensor, labels: Tensor) -> Tensor:
        target = (self.centers[labels] + 1) / 2
        p = ((u.float() + 1) / 2).clamp(1e-6, 1 - 1e-6)
        loss = F.binary_cross_entropy(p, target)
        if self.quantization:
            loss = loss + self.quantization * _log_cosh(u.float().abs() - 1).sum(1).mean()
        return loss


def _pair_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(same, off)``: same-label pairs, and every pair of two different items."""
    same = labels[:, None] == labels[None, :]
    return same, ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)


def _log_cosh(x: Tensor) -> Tensor:
    return x + F.softplus(-2 * x) - math.log(2.0)


class PairwiseLikelihoodLoss(nn.Module):
    """DPSH (eq. 4): pairwise likelihood of ``θ_ij = ½ u_iᵀu_j`` plus ``η ||sign(u) - u||²``."""

    def __init__(self, quantization: float = 0.1) -> None:
        super().__init__()
        self.quantization = float(quantization)

    def forward(self, u: Tensor, labels: Tensor) -> Tensor:
        u = u.float()
        theta = 0.5 * u @ u.T
        same, off = _pair_masks(labels)
        nll = (F.softplus(theta) - same.float() * theta)[off].mean() if len(labels) > 1 else u.sum() * 0
        return nll + self.quantization * (torch.sign(u).detach() - u).pow(2).sum(1).mean()


class TripletLoss(nn.Module):
    """Batch-hard triplet loss on the relaxed BER ``(K - uᵀv) / 2K`` with margin ``margin``.

    ``cross_speaker=True`` mines the positives across voices: an anchor's positives are the items
    of its label spoken by *another* speaker, so the farthest positive is the farthest other voice
    saying the same word, which is the pair the ``cross_speaker`` protocol scores (the query's own
    speaker left out). The restriction is speechret's choice, not Hermans et al.'s; it follows
    the cross-camera positives of person re-identification (e.g. the inter-camera proxies of Wang
    et al., "Camera-aware Proxies for Unsupervised Person Re-Identification", AAAI 2021), with the
    speaker in the camera's place. The negatives stay every item of another label, whoever speaks
    it. It reads the batch's ``speakers``; anchors with no such positive or no negative in the
    batch are left out.
    """

    def __init__(self, margin: float = 0.25, cross_speaker: bool = False) -> None:
        super().__init__()
        self.margin = float(margin)
        self.cross_speaker = bool(cross_speaker)
        self.inputs = ("speakers",) if self.cross_speaker else ()

    def forward(self, u: Tensor, labels: Tensor, speakers=None) -> Tensor:
        u = u.float()
        k = u.shape[1]
        d = (k - u @ u.T) / (2 * k)
        same, off = _pair_masks(labels)
        pos, neg = same & off, ~same
        if self.cross_speaker:
            if speakers is None or len(speakers) != len(labels):
                raise ValueError("TripletLoss(cross_speaker=True) needs each item's speaker (the batch's "
                                 f"'speakers'), got {None if speakers is None else len(speakers)} for "
                                 f"{len(labels)} items")
            index = {s: i for i, s in enumerate(dict.fromkeys(str(s) for s in speakers))}
            spk = torch.tensor([index[str(s)] for s in speakers], device=labels.device)
            pos = pos & (spk[:, None] != spk[None, :])
        valid = pos.any(1) & neg.any(1)
        if not bool(valid.any()):
            return u.sum() * 0
        d_ap = torch.where(pos, d, torch.full_like(d, -1.0)).max(1).values
        d_an = torch.where(neg, d, torch.full_like(d, 2.0)).min(1).values
        return F.relu(self.margin + d_ap - d_an)[valid].mean()


class BitBalanceLoss(nn.Module):
    """Bit balance (spectral hashing's constraint, relaxed): ``mean_k (mean_i u_ik)²``."""

    def forward(self, u: Tensor, labels: Tensor | None = None) -> Tensor:
        return u.float().mean(0).pow(2).mean()


class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``-scale`` (Ganin & Lempitsky 2015, §3.2)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return -ctx.scale * grad, None


class SpeakerAdversaryLoss(nn.Module):
    """Speaker-adversarial term: cross-entropy of a speaker classifier on ``GRL(u)``.

    The classifier (``K → hidden → max_speakers``, ReLU) is trained to name the training speaker
    of each item; the gradient that reaches the codes is reversed and scaled by ``scale`` (the
    λ of Ganin & Lempitsky 2015 eq. 13), so the encoder is pushed toward codes from which the
    speaker cannot be told. Choices the papers leave open: the classifier sees the relaxed code
    ``u`` (what retrieval compares), not an inner layer; ``scale`` is constant (Ganin's ramp
    ``2 / (1 + e^{-10p}) - 1`` over training progress ``p`` is not applied).

    Speakers are strings; :meth:`set_speakers` fixes their indices (the module's ``setup`` passes
    the training split's speakers, sorted, so every DDP rank agrees). Without it, a speaker gets
    the next free index when first seen (up to ``max_speakers``; later ones are ignored).
    Speakers outside the list (validation and test voices) and items with no speaker are
    ignored; a batch with none left contributes 0. The index list is kept in the state dict
    (``get_extra_state``), so a resumed run keeps its classifier's rows.
    """

    uses_speakers = True
    inputs = ("speakers",)

    def __init__(self, n_bits: int, max_speakers: int = 256, hidden: int = 256, scale: float = 1.0) -> None:
        super().__init__()
        if max_speakers < 2 or hidden < 1 or n_bits < 1:
            raise ValueError(f"SpeakerAdversaryLoss needs n_bits >= 1, max_speakers >= 2 and hidden >= 1, got "
                             f"{n_bits}, {max_speakers}, {hidden}")
        if scale < 0:
            raise ValueError(f"SpeakerAdversaryLoss scale must be >= 0, got {scale}")
        self.classifier = nn.Sequential(nn.Linear(n_bits, hidden), nn.ReLU(), nn.Linear(hidden, max_speakers))
        self.max_speakers, self.scale = int(max_speakers), float(scale)
        self.index: dict[str, int] = {}
        self._frozen = False

    def set_speakers(self, speakers: list[str]) -> None:
        """Fix the speaker → class index map (in the given order); other speakers are then ignored."""
        speakers = list(dict.fromkeys(str(s) for s in speakers if str(s)))
        if len(speakers) > self.max_speakers:
            raise ValueError(f"SpeakerAdversaryLoss: {len(speakers)} training speakers exceed max_speakers="
                             f"{self.max_speakers}; raise it in the model config")
        self.index, self._frozen = {s: i for i, s in enumerate(speakers)}, True

    def _targets(self, speakers, device: torch.device) -> Tensor:
        out = []
        for s in speakers:
            s = "" if s is None else str(s)
            if s and s not in self.index and not self._frozen and len(self.index) < self.max_speakers:
                self.index[s] = len(self.index)
            out.append(self.index.get(s, -100))
        return torch.tensor(out, dtype=torch.long, device=device)

    def forward(self, u: Tensor, labels: Tensor, speakers=None) -> Tensor:
        if speakers is None:
            return u.sum() * 0
        target = self._targets(speakers, u.device)
        if not bool((target >= 0).any()):
            return u.sum() * 0
        logits = self.classifier(GradientReversal.apply(u.float(), self.scale))
        return F.cross_entropy(logits, target, ignore_index=-100)

    def get_extra_state(self) -> dict:
        return {"speakers": list(self.index), "frozen": self._frozen}

    def set_extra_state(self, state: dict) -> None:
        self.index = {s: i for i, s in enumerate(state.get("speakers", []))}
        self._frozen = bool(state.get("frozen", False))


class FrameCTCLoss(nn.Module):
    """Auxiliary CTC on the net's per-frame head: ``ModelOutput.frame_logits`` ``(B, T', C + 1)``
    (the last column the blank) against the batch's ``targets`` ``(B, L)`` (padded with -1) and
    ``target_lengths``, over ``frame_lengths`` frames (Graves et al. 2006, eq. 14), averaged over
    the items that have targets, each item's loss divided by its target length (PyTorch's
    ``reduction="mean"``).

    Why, for retrieval by an unheard voice: the word label alone lets a net separate the training
    vocabulary by any cue that happens to work for the training voices (a tone contour, a
    duration); a target on the sounds in order, shared between words (北京 / 背景 / 识别 share ``b``,
    上海 / 商行 / 数字 / 识别 ``sh``), asks the frames for the segments themselves.  Choices the
    papers leave open: the targets are paper C's 27 pronunciation classes (the initial of each
    syllable, already in every batch for the CTC models), not full phones; an item without targets
    (a word with no pinyin, e.g. DSPSpeech-20's English words) is left out; alignments the frames
    cannot hold (fewer frames than the targets need) give 0 (``zero_infinity``), not ``inf``.
    With no frame head in the output (``eval()`` mode, or a net built without ``frame_classes``)
    the term is 0.
    """

    inputs = ("output", "targets", "target_lengths")

    def forward(self, u: Tensor, labels: Tensor, output=None, targets: Tensor | None = None,
                target_lengths: Tensor | None = None) -> Tensor:
        frame_logits = getattr(output, "frame_logits", None)
        if frame_logits is None or targets is None or target_lengths is None:
            return u.sum() * 0
        keep = target_lengths > 0
        if not bool(keep.any()):
            return u.sum() * 0
        n_out = frame_logits.shape[-1]
        tg = targets[keep]
        if bool((tg >= n_out - 1).any()):
            raise ValueError(f"FrameCTCLoss: targets reach class {int(tg.max())} but the frame head has "
                             f"{n_out - 1} classes and the blank (set model.net.frame_classes to the number "
                             "of pronunciation classes)")
        logp = frame_logits[keep].float().log_softmax(-1).transpose(0, 1)  # (T', B, C + 1)
        return F.ctc_loss(logp, tg.clamp_min(0), output.frame_lengths[keep], target_lengths[keep],
                          blank=n_out - 1, reduction="mean", zero_infinity=True)


class HashObjective(nn.Module):
    """Weighted sum of hash losses: ``terms`` maps a name to a loss module, ``weights`` to its weight.

    ``forward(u, labels, speakers=None, **inputs) -> (total, {name: value})`` so each term is
    logged.  A term receives, as keywords, the further inputs its ``inputs`` attribute names
    (``speakers`` for :class:`SpeakerAdversaryLoss`; ``output``, ``targets``, ``target_lengths``
    for :class:`FrameCTCLoss`), ``None`` where the caller has none; a term with
    ``uses_speakers = True`` also gets the training speakers from :meth:`set_speakers`.
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        if not terms:
            raise ValueError("HashObjective needs at least one term")
        self.terms = nn.ModuleDict(dict(terms))
        weights = dict(weights or {})
        unknown = set(weights) - set(self.terms)
        if unknown:
            raise ValueError(f"HashObjective weights name unknown terms {sorted(unknown)}; terms: {sorted(self.terms)}")
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.terms}

    def set_speakers(self, speakers: list[str]) -> None:
        for term in self.terms.values():
            if getattr(term, "uses_speakers", False):
                term.set_speakers(speakers)

    def forward(self, u: Tensor, labels: Tensor, speakers=None, **inputs) -> tuple[Tensor, dict[str, Tensor]]:
        inputs["speakers"] = speakers
        parts = {name: term(u, labels, **{k: inputs.get(k) for k in getattr(term, "inputs", ())})
                 for name, term in self.terms.items()}
        total = sum(self.weights[name] * value for name, value in parts.items())
        return total, parts
