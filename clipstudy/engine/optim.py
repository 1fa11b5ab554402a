"""Optimizer and learning-rate schedule (stepped per iteration)."""

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
    return torch.optim.AdamW(params, lr=cfg.lr, fused=device.type == "cuda")


def lr_multiplier(cfg: TrainConfig, steps_per_epoch: int, base_lr: float) -> Callable[[int], float]:
    """Linear warm-up, then constant / cosine to min_lr / cosine with warm restarts every t0_epochs.

    The floor is min_lr relative to each group's own base rate, so groups with very different
    rates (backbone 5e-7, head 5e-4) all decay to min_lr without going negative.
    """
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    total = max(cfg.epochs * steps_per_epoch - warmup, 1)
    period = max(round(cfg.t0_epochs * steps_per_epoch), 1)
    floor = min(cfg.min_lr / base_lr, 1.0) if base_lr > 0 else 0.0

    def cosine(t: float) -> float:
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        step -= warmup
        if cfg.scheduler == "cosine":
            return cosine(min(step / total, 1.0))
        if cfg.scheduler == "cosine_restarts":
            return cosine((step % period) / period)
        return 1.0

    return multiplier


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> LambdaLR:
    lambdas = [lr_multiplier(cfg, steps_per_epoch, g["lr"]) for g in optimizer.param_groups]
    return LambdaLR(optimizer, lambdas)
