"""Applying CPOs to a batch: seeded random augmentation and the papers' one-copy-per-CPO expansion.

:class:`CPOAugment` is the ``_target_`` of ``conf/cpo``; :func:`expand_with_cpos` builds the
processed copies of paper B §V-A and the robustness query sets of papers A, B and C.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from speechret.cpo.base import CPO, _as_batch, _check_lengths
from speechret.cpo.names import build_cpo
from speechret.cpo.noise import CafeNoise
from speechret.errors import ConfigError

__all__ = ["CPOAugment", "expand_with_cpos"]


def _apply_op(op: CPO, x: Tensor, generator, lengths: Tensor | None,
              context: tuple[Tensor, Tensor | None, Tensor] | None = None) -> Tensor:
    if isinstance(op, CafeNoise) and context is not None:
        return op(x, generator, lengths=lengths, context=context)
    return op(x, generator, lengths=lengths)


class CPOAugment(nn.Module):
    """Seeded random application of CPOs to a batch (training augmentation).

    ``ops`` are CPO names (``gain_+3dB``, ...), config nodes with ``_target_`` or CPO instances
    (see :func:`~speechret.cpo.build_cpo`).
    ``mode="each"`` (default, as in ``docs/CONTRACT.md``): the ops are applied in the listed
    order, op ``i`` independently to each item with probability ``p[i]`` (``p`` a float for all or
    a list per op), so an item may receive several ops.
    ``mode="one"``: with probability ``p`` (a float) an item receives exactly one op, chosen
    uniformly; this reproduces in expectation the papers' training-set expansion (paper B §V-A:
    originals plus one processed copy per CPO, i.e. ``p = K / (K + 1)`` for ``K`` ops).

    The selected items of an op form one sub-batch and the op runs once on it (batched), with the
    whole batch as babble context for cafe noise. Random draws come from the module's own
    :class:`torch.Generator` seeded with ``seed`` (CPU; the selection does not depend on the
    device); :meth:`reset` re-seeds. Each DataLoader worker holding a copy would replay the same
    stream, so run it in the training step (on the device), not in dataset workers.
    ``train_only=True`` makes it the identity in ``eval()`` mode. The padded zone (``lengths``)
    stays zero.
    """

    def __init__(
        self,
        ops: Sequence[str | Mapping[str, Any] | CPO] = (),
        p: float | Sequence[float] = 0.5,
        seed: int = 0,
        *,
        mode: str = "each",
        sample_rate: int = 16000,
        pool: Any = None,
        train_only: bool = False,
    ) -> None:
        super().__init__()
        self.ops: list[CPO] = [build_cpo(o, sample_rate=sample_rate, pool=pool)
                               for o in (ops or [])]
        if mode not in ("each", "one"):
            raise ConfigError(f"CPOAugment: mode must be 'each' or 'one', got {mode!r}")
        self.mode = mode
        if isinstance(p, (int, float)):
            probs = [float(p)] * len(self.ops)
        else:
            probs = [float(v) for v in p]
            if mode == "one":
                raise ConfigError("CPOAugment: mode='one' takes a single probability p")
            if len(probs) != len(self.ops):
                raise ConfigError(f"CPOAugment: {len(probs)} probabilities p for "
                                  f"{len(self.ops)} ops")
        if any(not 0.0 <= v <= 1.0 for v in probs):
            raise ConfigError(f"CPOAugment: probabilities p must lie in [0, 1], got {probs}")
        self.p = probs if mode == "each" else float(p)  # type: ignore[arg-type]
        self.seed = int(seed)
        self.train_only = bool(train_only)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-seed the generator (``seed`` defaults to the construction seed)."""
        self.seed = self.seed if seed is None else int(seed)
        self.generator.manual_seed(self.seed)

    @property
    def names(self) -> list[str]:
        return [op.name for op in self.ops]

    def extra_repr(self) -> str:
        return f"ops={self.names}, p={self.p}, mode={self.mode!r}, seed={self.seed}"

    def _run(self, op: CPO, out: Tensor, sel: Tensor, lengths: Tensor | None,
             context: tuple[Tensor, Tensor | None, Tensor]) -> Tensor:
        idx = torch.nonzero(sel, as_tuple=False).reshape(-1).to(out.device)
        if idx.numel() == 0:
            return out
        sub_len = lengths[idx] if lengths is not None else None
        ctx = (context[0], context[1], idx)
        res = _apply_op(op, out[idx], self.generator, sub_len, ctx)
        out = out.clone()
        out[idx] = res.to(out.dtype)
        return out

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> Tensor:
        if not self.ops or (self.train_only and not self.training):
            return wave
        x, was_1d = _as_batch(wave)
        lens = _check_lengths(lengths, x)
        b = x.shape[0]
        out = x
        if self.mode == "each":
            for op, prob in zip(self.ops, self.p):
                sel = torch.rand((b,), generator=self.generator) < prob
                out = self._run(op, out, sel, lens, (out, lens, torch.arange(b)))
        else:
            apply = torch.rand((b,), generator=self.generator) < self.p
            choice = torch.randint(len(self.ops), (b,), generator=self.generator)
            context = (x, lens, torch.arange(b))
            for k, op in enumerate(self.ops):
                out = self._run(op, out, apply & (choice == k), lens, context)
        return out[0] if was_1d else out


def expand_with_cpos(
    wave: Tensor,
    ops: Sequence[str | Mapping[str, Any] | CPO],
    generator: torch.Generator | None = None,
    *,
    lengths: Tensor | None = None,
    include_original: bool = False,
    sample_rate: int = 16000,
) -> tuple[Tensor, Tensor]:
    """One processed copy of every utterance per op: the papers' CPO expansion.

    Paper B §V-A expands its training set with the CPO-processed copies of each utterance, and
    papers A (§5.2 Table 4), B (§V-C Table 3) and C (§5.3 Table 3) build their robustness query
    sets the same way. Returns ``(waves, op_index)``: ``waves`` is ``(K * B, T)`` op-major
    (rows ``k*B .. k*B + B - 1`` hold op ``k`` applied to the whole batch in one call),
    ``op_index[r]`` the op of row ``r``. ``include_original=True`` prepends the untouched batch
    with op index ``-1``. With ``lengths``, the matching lengths are ``lengths.repeat(K)``
    (``K + 1`` with the originals).
    """
    x, _ = _as_batch(wave)
    lens = _check_lengths(lengths, x)
    built = [build_cpo(o, sample_rate=sample_rate) for o in ops]
    b = x.shape[0]
    parts: list[Tensor] = []
    index: list[Tensor] = []
    if include_original:
        parts.append(x)
        index.append(torch.full((b,), -1, dtype=torch.long))
    context = (x, lens, torch.arange(b))
    for k, op in enumerate(built):
        parts.append(_apply_op(op, x, generator, lens, context).to(x.dtype))
        index.append(torch.full((b,), k, dtype=torch.long))
    if not parts:
        return x[:0], torch.zeros(0, dtype=torch.long)
    return torch.cat(parts, 0), torch.cat(index, 0).to(x.device)
