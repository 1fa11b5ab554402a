import math

import pytest
import torch

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


def test_warmup_then_cosine_to_min_lr():
    lrs = rates(epochs=4, lr=1.0, warmup_epochs=1, scheduler="cosine", min_lr=0.1)
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
