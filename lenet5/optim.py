"""What a recipe names to train with: the optimizer, the learning-rate schedule and the weights' average;
and Muon for LeNet-5's weight matrices with AdamW for the rest, as one optimizer: one schedule, one checkpoint.

Muon (Jordan et al., 2024) steps each weight matrix along its momentum orthogonalised by a Newton-Schulz
iteration, so that every direction of the update moves as far as every other. On MNIST it takes LeNet-5
to 99% test accuracy in one epoch, where AdamW needs two (bench/RESULTS.md).

timm.optim.Muon is the same algorithm, and its Newton-Schulz iteration and learning-rate scaling are used
here. Its optimizer is not, because it always iterates in bfloat16, which a CPU without native bf16
emulates: 60 ms a step on a 2-core AVX2 CPU, against 3.5 ms in float32. LeNet-5's largest matrix is
120 x 400, so this one iterates in float32 everywhere.

timm brings torchvision and torch._dynamo: seconds of start-up that a command failing on its arguments, or
a run without EMA or Muon, should not pay. It is imported in use.
"""

from collections.abc import Iterable

import torch
from torch.optim.adamw import adamw

from .recipes import MOMENTUM, ONE_CYCLE_MOMENTUM, TrainConfig

PLATEAU_FACTOR, PLATEAU_PATIENCE = 0.5, 2  # the plateau schedule halves the rate after 2 flat epochs
WARMUP_SHARE = 0.15  # of the one-cycle schedule's steps


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "muon":
        return Muon(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, momentum=MOMENTUM)
    if config.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(MOMENTUM, 0.999), weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=MOMENTUM, nesterov=True,
                           weight_decay=config.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """The recipe's schedule: one-cycle over all its steps, or the plateau one."""
    if config.schedule == "onecycle":
        return one_cycle(optimizer, config, steps_per_epoch)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=PLATEAU_FACTOR,
                                                      patience=PLATEAU_PATIENCE)


def one_cycle(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int, step: int = 0,
              warmup_steps: float | None = None) -> torch.optim.lr_scheduler.OneCycleLR:
    """A short warm-up to the peak rate (WARMUP_SHARE of the run unless `warmup_steps` is given), then a long
    anneal to almost nothing, over config.epochs, the momentum moving the other way (ONE_CYCLE_MOMENTUM);
    from `step` on, for a run that is rescheduled there."""
    total = config.epochs * steps_per_epoch
    warmup = WARMUP_SHARE if warmup_steps is None else min(0.5, warmup_steps / total)  # 1.0 would leave no anneal
    low, high = ONE_CYCLE_MOMENTUM
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=warmup,
                                               base_momentum=low, max_momentum=high, last_epoch=step - 1)


def warmup_length(schedule: torch.optim.lr_scheduler.OneCycleLR) -> float:
    """The steps a one-cycle schedule warms up over (OneCycleLR keeps no pct_start)."""
    return schedule._schedule_phases[0]["end_step"] + 1


def make_ema(model: torch.nn.Module, decay: float) -> torch.nn.Module:
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay, use_warmup=True)


# Keller Jordan's coefficients, three iterations instead of the usual five. Three bring singular values 4x
# apart to within 2x of each other (tests/test_optim.py), not all to 1, but the one-epoch recipe ended as
# accurate on 20 seeds, and the optimizer step costs 40% less (bench/RESULTS.md).
NEWTON_SCHULZ = [(3.4445, -4.7750, 2.0315)] * 3
ADAMW_BETAS = (0.9, 0.95)


def takes_muon(param: torch.Tensor) -> bool:
    """Weight matrices and convolution kernels (flattened to out x in*k*k); biases take AdamW."""
    return param.ndim >= 2 and min(param.shape[0], param[0].numel()) > 1


class Muon(torch.optim.Optimizer):
    """Muon with Nesterov momentum for `takes_muon` parameters, AdamW for the others, at the same rate.

    The rate is in AdamW's units: each matrix's orthogonal update is scaled to the size an AdamW update
    would have (timm's "match_rms_adamw", 0.2 * sqrt(larger side)). Weight decay is decoupled for both.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0,
                 momentum: float = 0.9):
        params = list(params)
        groups = [{"params": [p for p in params if takes_muon(p)], "muon": True},
                  {"params": [p for p in params if not takes_muon(p)], "muon": False}]
        super().__init__([g for g in groups if g["params"]], {"lr": lr, "weight_decay": weight_decay, "momentum": momentum})
        from timm.optim.muon import get_lr_scale, zeropower_via_newtonschulz

        self.orthogonalised, self.lr_scale = zeropower_via_newtonschulz, get_lr_scale

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group["muon"]:
                self.muon_step(params, group)
            else:
                self.adamw_step(params, group)
        return loss

    def muon_step(self, params: list[torch.Tensor], group: dict) -> None:
        lr, momentum = group["lr"], group["momentum"]
        for p in params:
            buffer = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
            buffer.lerp_(p.grad, 1 - momentum)
            update = p.grad.lerp(buffer, momentum).reshape(p.shape[0], -1)  # Nesterov
            update = self.orthogonalised(update, len(NEWTON_SCHULZ), NEWTON_SCHULZ, dtype=torch.float32)
            p.mul_(1 - lr * group["weight_decay"])
            p.add_(update.reshape(p.shape).to(p.dtype), alpha=-lr * self.lr_scale(update.shape, "match_rms_adamw"))

    def adamw_step(self, params: list[torch.Tensor], group: dict) -> None:
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state.update(step=torch.zeros(()), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        adamw(
            params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
            [s["step"] for s in states], amsgrad=False, beta1=ADAMW_BETAS[0], beta2=ADAMW_BETAS[1], lr=group["lr"],
            weight_decay=group["weight_decay"], eps=1e-8, maximize=False,
        )
