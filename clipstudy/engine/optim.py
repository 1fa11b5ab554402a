"""Optimizer and learning-rate schedule (stepped per iteration or per epoch, `train.scheduler_step`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR

from clipstudy.config import TrainConfig
from clipstudy.methods.base import ParamGroup


def build_optimizer(groups: list[ParamGroup], cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [g.as_torch() for g in groups]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    fused = device.type == "cuda" if cfg.fused_optimizer is None else cfg.fused_optimizer
    return torch.optim.AdamW(params, lr=cfg.lr, eps=cfg.adam_eps, fused=fused)


def schedule_units_per_epoch(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """How many times per epoch the schedule advances: every optimizer step, or once (`train.scheduler_step`)."""
    return 1 if cfg.scheduler_step == "epoch" else steps_per_epoch


def restart_position(t: float, period: float, t_mult: int) -> tuple[float, float]:
    """(time into the current cycle, that cycle's length) of cosine warm restarts whose first cycle lasts
    `period` and each next one `t_mult` times longer (T_cur and T_i of PyTorch's CosineAnnealingWarmRestarts)."""
    if t_mult == 1:
        return t % period, period
    length = period
    while t >= length:
        t -= length
        length *= t_mult
    return t, length


def lr_multiplier(cfg: TrainConfig, units_per_epoch: int, base_lr: float) -> Callable[[int], float]:
    """Linear warm-up, then constant / cosine to eta_min / cosine with warm restarts (first cycle t0_epochs,
    each next one t_mult times longer), as a multiple of the group's base rate at schedule step `t`.

    The floor is eta_min relative to each group's own base rate, so groups with very different rates
    (backbone 5e-7, head 5e-4) all decay to the same absolute eta_min; a group whose base rate is below
    eta_min stays at its base rate.
    """
    warmup = round(cfg.warmup_epochs * units_per_epoch)
    total = max(cfg.epochs * units_per_epoch - warmup, 1)
    period = max(cfg.t0_epochs * units_per_epoch, 1)
    floor = min(cfg.eta_min / base_lr, 1.0) if base_lr > 0 else 0.0

    def cosine(progress: float) -> float:
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def multiplier(t: int) -> float:
        if t < warmup:
            return (t + 1) / warmup
        t -= warmup
        if cfg.scheduler == "cosine":
            return cosine(min(t / total, 1.0))
        if cfg.scheduler == "cosine_restarts":
            into, length = restart_position(t, period, cfg.t_mult)
            return cosine(into / length)
        return 1.0

    return multiplier


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> LambdaLR:
    """One LambdaLR over every group (each keeps its own base rate); the trainer steps it after every
    optimizer step, or after every epoch with `train.scheduler_step: epoch`."""
    units = schedule_units_per_epoch(cfg, steps_per_epoch)
    lambdas = [lr_multiplier(cfg, units, g["lr"]) for g in optimizer.param_groups]
    return LambdaLR(optimizer, lambdas)
