"""Sharpness-aware minimisation around any optimizer (``sharpness=sam`` / ``sharpness=asam``).

:class:`SAM` implements Foret, Kleiner, Mobahi & Neyshabur, "Sharpness-Aware Minimization for
Efficiently Improving Generalization", ICLR 2021, Algorithm 1 with its first-order approximation
(§2, eq. 2-3): for a batch's loss L at the weights w,

1. the gradient g = ∇L(w) (the first closure call);
2. the ascent step ε̂ = ρ · g / ‖g‖₂ (eq. 2 with p = 2), w ← w + ε̂;
3. the gradient at the perturbed weights, ∇L(w + ε̂) (the second closure call on the same batch);
4. w ← w − ε̂, then the wrapped optimizer's own step with that gradient (eq. 3).

``adaptive=True`` is ASAM (Kwon, Kim, Park & Choi, "ASAM: Adaptive Sharpness-Aware Minimization for
Scale-Invariant Learning", ICML 2021, eq. 9 with T_w = |w|): ε̂ = ρ · T_w² g / ‖T_w g‖₂, so the
neighbourhood scales with each weight.  Both follow the structure of the widely used PyTorch
reference, davda54/sam (MIT licence), written here around an already-built optimizer so that any
experiment's configured optimizer and its schedule (one-cycle steps the same param groups) are
kept as they are.

Choices the paper leaves open, documented here:

* **Batch-norm statistics.** The second pass runs the network in training mode again; the module's
  buffers (running means and variances, counters) are saved before it and restored after it, so
  they advance once per step, from the unperturbed weights, as without SAM (davda54/sam disables
  the running-statistics update for the same reason).  Pass ``module`` to get this; without it
  the buffers see both passes.
* **Gradient clipping** (``trainer.gradient_clip_val``) applies to each pass's gradient, as Lightning
  clips after every closure call; the ascent direction is the clipped gradient.
* **Mixed precision.** bf16 works (the optimizer step receives Lightning's closure). float16 with a
  gradient scaler does not: the scaler steps the optimizer without a closure, and :meth:`SAM.step`
  refuses that by name rather than take a plain step.
* **Gradient accumulation** is refused (``HashingModule.configure_optimizers``): the second pass would
  see only the last micro-batch.
* The ascent uses the whole model's gradient norm; under DDP each pass's gradient is already
  averaged over the processes, so every process takes the same ε̂ (the paper's m-sharpness with m
  the global batch, not per-device m).

A step costs two forward and backward passes; the wrapped optimizer's state (Adam's moments) is
what :meth:`SAM.state_dict` saves and restores, so checkpoints resume as the base optimizer's do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from speechret.errors import ConfigError


class SAM(torch.optim.Optimizer):
    """Wrap ``optimizer`` so that each :meth:`step` takes SAM's two-pass update.

    Args:
        optimizer: the built base optimizer (AdamW, SGD, ...); its param groups are shared, so an
            LR scheduler built on this object schedules the base optimizer.
        rho: the neighbourhood radius ρ (> 0; Foret et al. use 0.05 with SGD on CIFAR).
        adaptive: ASAM's element-wise scaling (Kwon et al. 2021; they use ρ about 10× SAM's).
        module: the model whose buffers the second pass must not change (batch-norm statistics).
        eps: added to the gradient norm.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, rho: float = 0.05, adaptive: bool = False,
                 module: nn.Module | None = None, eps: float = 1e-12) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ConfigError(f"sharpness: SAM wraps a built torch optimizer, got {type(optimizer).__name__}")
        if not float(rho) > 0:
            raise ConfigError(f"sharpness.rho must be > 0, got {rho}")
        self.base_optimizer = optimizer
        self.module = module
        self.eps = float(eps)
        super().__init__(optimizer.param_groups, {**optimizer.defaults, "rho": float(rho), "adaptive": bool(adaptive)})
        # one set of groups and one state for both objects: schedulers and checkpoints see the base's
        self.param_groups = optimizer.param_groups
        self.state = optimizer.state

    def _grad_norm(self) -> torch.Tensor:
        norms = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad * p.abs() if group["adaptive"] else p.grad
                norms.append(torch.linalg.vector_norm(g.to(torch.promote_types(g.dtype, torch.float32))))
        if not norms:
            return torch.zeros(())
        return torch.linalg.vector_norm(torch.stack(norms))

    @torch.no_grad()
    def ascend(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Step 2: move every parameter with a gradient to w + ε̂; returns ``(param, ε̂)`` pairs."""
        norm = self._grad_norm()
        moved = []
        for group in self.param_groups:
            scale = group["rho"] / (norm + self.eps)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e = p.grad * scale.to(p.device, p.dtype)
                if group["adaptive"]:
                    e.mul_(p.pow(2))
                p.add_(e)
                moved.append((p, e))
        return moved

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        if closure is None:
            raise ConfigError("sharpness=sam needs the loss closure at each optimizer step (Lightning's automatic "
                              "optimization passes it); float16 training with a gradient scaler steps without one: "
                              "use bf16 (trainer.precision=bf16-mixed) or 32-bit with SAM")
        with torch.enable_grad():
            loss = closure()
        moved = self.ascend()
        saved = None if self.module is None else [b.detach().clone() for b in self.module.buffers()]
        self.zero_grad(set_to_none=False)
        with torch.enable_grad():
            closure()
        if saved is not None:
            for b, s in zip(self.module.buffers(), saved):
                b.copy_(s)
        for p, e in moved:
            p.sub_(e)
        self.base_optimizer.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
