"""Sharpness-aware minimisation (speechret.models.sam.SAM; ``sharpness=sam``): the two-pass update of
Foret et al. (ICLR 2021) and ASAM (Kwon et al., ICML 2021), the batch-norm statistics it leaves alone,
its checkpointed state, and a Lightning run through the config group."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from speechret.errors import ConfigError
from speechret.models.sam import SAM


def _closure_step(opt, loss_fn):
    """One ``opt.step`` through a closure that zeroes the gradients and back-propagates ``loss_fn()``."""

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    return opt.step(closure)


def _mse_step(model, opt, x, y):
    """One ``opt.step`` on the mean squared error of ``model`` over ``(x, y)``."""
    return _closure_step(opt, lambda: ((model(x) - y) ** 2).mean())


def _quadratic_step(opt, a, w):
    """One ``opt.step`` on ½ wᵀAw."""
    return _closure_step(opt, lambda: 0.5 * w @ a @ w)


def _quadratic():
    torch.manual_seed(0)
    a = torch.randn(5, 5, dtype=torch.float64)
    a = a @ a.T + torch.eye(5, dtype=torch.float64)
    w = nn.Parameter(torch.randn(5, dtype=torch.float64))
    return a, w


@pytest.mark.parametrize("adaptive,rho", [(False, 0.05), (True, 0.5)])
def test_one_step_is_the_base_step_with_the_gradient_at_the_ascended_weights(adaptive, rho):
    """L(w) = ½ wᵀAw, plain SGD: w' = w − lr·A(w + ε̂), ε̂ = ρ T²g / ‖T g‖ (T = I for SAM, |w| for ASAM)."""
    a, w = _quadratic()
    w0 = w.detach().clone()
    opt = SAM(torch.optim.SGD([w], lr=0.1), rho=rho, adaptive=adaptive)

    loss = _quadratic_step(opt, a, w)
    g = a @ w0
    t = w0.abs() if adaptive else torch.ones_like(w0)
    eps = rho * t * t * g / torch.linalg.vector_norm(t * g)
    expected = w0 - 0.1 * (a @ (w0 + eps))
    torch.testing.assert_close(w.detach(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss.detach(), 0.5 * w0 @ a @ w0)
    assert not torch.allclose(expected, w0 - 0.1 * g)   # not the plain step


def test_second_pass_leaves_batch_norm_statistics_as_one_forward_left_them():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1))
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    ref = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1))
    ref.load_state_dict(net.state_dict())
    ref.train()
    ref(x)                                            # one forward at the unperturbed weights
    _mse_step(net, SAM(torch.optim.SGD(net.parameters(), lr=0.1), rho=0.5, module=net), x, y)
    bn, bn_ref = net[1], ref[1]
    torch.testing.assert_close(bn.running_mean, bn_ref.running_mean)
    torch.testing.assert_close(bn.running_var, bn_ref.running_var)
    assert int(bn.num_batches_tracked) == 1


def test_state_dict_is_the_base_optimizers_and_reloads_its_moments():
    a, w = _quadratic()
    opt = SAM(torch.optim.AdamW([w], lr=0.01), rho=0.05)

    _quadratic_step(opt, a, w)
    state = opt.state_dict()
    assert state == opt.base_optimizer.state_dict()
    w2 = nn.Parameter(w.detach().clone())
    opt2 = SAM(torch.optim.AdamW([w2], lr=0.01), rho=0.05)
    opt2.load_state_dict(state)
    torch.testing.assert_close(opt2.base_optimizer.state[w2]["exp_avg"], opt.base_optimizer.state[w]["exp_avg"])
    assert opt2.param_groups is opt2.base_optimizer.param_groups   # a scheduler built on SAM steps the base


def test_a_step_without_the_loss_closure_and_a_bad_radius_are_refused_by_name():
    _, w = _quadratic()
    with pytest.raises(ConfigError, match="rho"):
        SAM(torch.optim.SGD([w], lr=0.1), rho=0.0)
    opt = SAM(torch.optim.SGD([w], lr=0.1))
    with pytest.raises(ConfigError, match="closure"):
        opt.step()


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_sharpness_sam_trains_speechret_hash_two_passes_a_step_under_one_cycle(build_speechret_hash, precision):
    """``sharpness=sam`` composes with the experiment: Lightning runs the training step twice per
    optimizer step (the same batch), in 32-bit and bf16 alike, the one-cycle schedule still moves
    the learning rate, and the loss falls on a tiny corpus."""
    import lightning as L

    torch.manual_seed(0)
    model, dm, cfg = build_speechret_hash("sharpness=sam", "data.batch_size=8", "augment=none",
                                          "model.net.channels=[8,16]")
    assert cfg.model.sharpness.rho == 0.05
    calls, losses, lrs = [], [], []
    step = model.training_step

    def counted(batch, batch_idx):
        calls.append(batch_idx)
        loss = step(batch, batch_idx)
        losses.append(float(loss.detach()))
        return loss

    model.training_step = counted

    class LR(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = L.Trainer(max_steps=12, accelerator="cpu", precision=precision, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[LR()])
    trainer.fit(model, datamodule=dm)
    assert isinstance(trainer.optimizers[0], SAM)
    assert len(calls) == 24 and calls[0::2] == calls[1::2]       # two passes of each batch
    assert len(set(lrs)) > 5                                      # the schedule steps the shared groups
    first, last = sum(losses[0:6:2]) / 3, sum(losses[-6::2]) / 3
    assert last < first


def test_sharpness_with_gradient_accumulation_is_refused_by_name(build_speechret_hash):
    import lightning as L

    model, dm, _ = build_speechret_hash("sharpness=sam", "data.batch_size=4", "model.net.channels=[8,16]")
    trainer = L.Trainer(max_steps=1, accumulate_grad_batches=2, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0)
    with pytest.raises(ConfigError, match="accumulate_grad_batches=2"):
        trainer.fit(model, datamodule=dm)


def _sam_step_on_rank(rank: int, world: int, init_file: str, x, y, w0, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        net = nn.Linear(x.shape[1], 1, dtype=torch.float64)
        net.load_state_dict(w0)
        ddp = nn.parallel.DistributedDataParallel(net)
        shard = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
        _mse_step(ddp, SAM(torch.optim.SGD(ddp.parameters(), lr=0.1), rho=0.05, module=ddp), x[shard], y[shard])
        results.put((rank, {k: v.clone() for k, v in net.state_dict().items()}))
    finally:
        torch.distributed.destroy_process_group()


def test_two_ddp_processes_take_the_step_one_process_takes_on_the_whole_batch(tmp_path, fork_safe_threads,
                                                                              gloo_ranks):
    """Under DDP each pass's gradient is averaged over the processes before the ascent, so every rank
    takes the same ε̂ and ends with the weights of one process's SAM step on the whole batch (m-sharpness
    with m the global batch, as the module docstring says)."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    net = nn.Linear(3, 1, dtype=torch.float64)
    w0 = {k: v.clone() for k, v in net.state_dict().items()}
    _mse_step(net, SAM(torch.optim.SGD(net.parameters(), lr=0.1), rho=0.05, module=net), x, y)
    got = gloo_ranks(_sam_step_on_rank, 2, str(tmp_path / "pg"), x, y, w0)
    assert sorted(got) == [0, 1]
    for (state,) in got.values():
        for k, v in net.state_dict().items():
            torch.testing.assert_close(state[k], v, rtol=1e-12, atol=1e-12)
        assert not torch.equal(state["weight"], w0["weight"])
