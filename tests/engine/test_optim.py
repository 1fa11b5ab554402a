import math

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts

from clipstudy.config import TrainConfig
from clipstudy.engine.optim import build_optimizer, build_scheduler
from clipstudy.methods.base import ParamGroup


def rates(steps_per_epoch=10, **train):
    cfg = TrainConfig(**train)
    param = torch.nn.Parameter(torch.zeros(2, 2))
    optimizer = build_optimizer([ParamGroup("p", [param], cfg.lr, 0.0)], cfg, torch.device("cpu"))
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    out = []
    for _ in range(cfg.epochs * steps_per_epoch):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_warmup_then_cosine_to_eta_min():
    lrs = rates(epochs=4, lr=1.0, warmup_epochs=1, scheduler="cosine", eta_min=0.1)
    assert lrs[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 29 / 30)))


def test_cosine_warm_restarts_every_t0_epochs():
    lrs = rates(epochs=4, lr=1.0, scheduler="cosine_restarts", t0_epochs=2)
    assert lrs[0] == lrs[20] == pytest.approx(1.0)
    assert lrs[19] < 0.01 and lrs[10] == pytest.approx(0.5)


def test_constant():
    assert set(rates(epochs=2, lr=0.3, scheduler="constant")) == {0.3}


BASE_LRS = (5e-4, 5e-7)
"""A head and a backbone group, three orders of magnitude apart (seed-000's recipe)."""
RESTARTS = {"scheduler": "cosine_restarts", "t0_epochs": 7, "t_mult": 2, "eta_min": 1e-7, "epochs": 20}


def two_groups(base_lrs=BASE_LRS):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in base_lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, base_lrs, strict=True)])


def group_lrs(optimizer):
    return [g["lr"] for g in optimizer.param_groups]


def engine_lrs(cfg: TrainConfig, steps_per_epoch: int) -> list[list[float]]:
    """Each group's lr at every optimizer step, with the schedule stepped as the trainer steps it."""
    optimizer = two_groups()
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    out = []
    for _ in range(cfg.epochs):
        for _ in range(steps_per_epoch):
            out.append(group_lrs(optimizer))
            optimizer.step()
            if cfg.scheduler_step == "step":
                scheduler.step()
        if cfg.scheduler_step == "epoch":
            scheduler.step()
    return out


def test_per_epoch_restarts_equal_pytorchs_cosine_annealing_warm_restarts():
    cfg = TrainConfig(**RESTARTS, scheduler_step="epoch")
    ours = engine_lrs(cfg, steps_per_epoch=1)
    optimizer = two_groups()
    torch_scheduler = CosineAnnealingWarmRestarts(optimizer, T_0=7, T_mult=2, eta_min=1e-7)
    expected = []
    for _ in range(20):
        expected.append(group_lrs(optimizer))
        optimizer.step()
        torch_scheduler.step()
    assert len(ours) == 20
    for epoch, (mine, theirs) in enumerate(zip(ours, expected, strict=True)):
        assert mine == pytest.approx(theirs, rel=1e-6), epoch
    assert ours[7] == pytest.approx(list(BASE_LRS))  # the first restart, after T_0 = 7 epochs
    assert ours[6][1] < 1.5e-7  # the backbone group decays towards the absolute eta_min too


def test_per_epoch_stepping_holds_the_lr_for_the_whole_epoch():
    cfg = TrainConfig(**RESTARTS, scheduler_step="epoch")
    ours = engine_lrs(cfg, steps_per_epoch=3)
    per_epoch = engine_lrs(cfg, steps_per_epoch=1)
    assert ours == [lrs for lrs in per_epoch for _ in range(3)]


def test_per_step_restarts_equal_pytorchs_stepped_with_fractional_epochs():
    steps = 5
    ours = engine_lrs(TrainConfig(**RESTARTS), steps)
    optimizer = two_groups()
    torch_scheduler = CosineAnnealingWarmRestarts(optimizer, T_0=7, T_mult=2, eta_min=1e-7)
    expected = []
    for epoch in range(20):
        for i in range(steps):
            torch_scheduler.step(epoch + i / steps)  # the lr of this iteration
            expected.append(group_lrs(optimizer))
            optimizer.step()
    for step, (mine, theirs) in enumerate(zip(ours, expected, strict=True)):
        assert mine == pytest.approx(theirs, rel=1e-6), step


def test_per_step_restarts_equal_pytorchs_with_t0_in_iterations():
    steps = 5
    ours = engine_lrs(TrainConfig(**RESTARTS), steps)
    optimizer = two_groups()
    torch_scheduler = CosineAnnealingWarmRestarts(optimizer, T_0=7 * steps, T_mult=2, eta_min=1e-7)
    expected = []
    for _ in range(20 * steps):
        expected.append(group_lrs(optimizer))
        optimizer.step()
        torch_scheduler.step()
    for step, (mine, theirs) in enumerate(zip(ours, expected, strict=True)):
        assert mine == pytest.approx(theirs, rel=1e-6), step
    assert ours[35] == pytest.approx(list(BASE_LRS))  # the restart after 7 epochs
    assert ours[34][0] < ours[99][0]  # the second cycle (14 epochs) is not over at epoch 20


def test_per_epoch_warmup_counts_epochs():
    cfg = TrainConfig(epochs=4, lr=1.0, warmup_epochs=2, scheduler="cosine", scheduler_step="epoch")
    lrs = rates(steps_per_epoch=1, **cfg.model_dump())
    assert lrs == pytest.approx([0.5, 1.0, 1.0, 0.5])


def test_the_fused_adamw_steps_as_the_loop_one():
    """train.fused_optimizer changes the kernel, not the update (here on CPU, where torch also fuses AdamW)."""
    torch.manual_seed(0)
    start = [torch.randn(7, 5), torch.randn(5)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(5)]
    trained = []
    for fused in (False, True):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        cfg = TrainConfig(lr=1e-2, fused_optimizer=fused)
        optimizer = build_optimizer([ParamGroup("all", params, lr=1e-2, weight_decay=0.01)], cfg, torch.device("cpu"))
        assert optimizer.defaults["fused"] is fused
        for step in grads:
            for p, g in zip(params, step, strict=True):
                p.grad = g.clone()
            optimizer.step()
        trained.append(params)
    for a, b in zip(*trained, strict=True):
        torch.testing.assert_close(a, b)
