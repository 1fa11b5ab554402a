"""The engine's GPU paths on a real CUDA device (skipped where torch sees none; `bench/gpu_check.py` runs
them on the GPU machine, which has no Ray or MLflow: nothing here imports them).

    pytest -m gpu tests/engine tests/data tests/models
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from clipstudy.engine import Trainer
from clipstudy.engine.streaming import BatchStream, in_order
from clipstudy.models.attention import fuse_attention
from clipstudy.models.build import build_model
from clipstudy.studyfile import build_config
from tests.conftest import seed000_augment

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
CUDA = torch.device("cuda")
SEED000 = seed000_augment()


def cuda_config(tiny_config, method: str, **overrides):
    return tiny_config(method, train__device="cuda", train__precision="bf16", **overrides)


@pytest.mark.parametrize("split", [True, False], ids=["split (as built)", "nn.MultiheadAttention (fused back)"])
def test_the_vision_tower_runs_on_the_flash_kernel_alone(split):
    """No float mask where none is needed: restricted to flash attention, the vision tower still runs
    (forward and backward, bf16), so SDPA picks flash there rather than the math fallback."""
    clip = build_model(build_config({"model.arch": "ViT-B-32"}).model, CUDA).model
    if not split:
        assert fuse_attention(clip) > 0
    clip.train()
    images = torch.randn(4, 3, 224, 224, device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        clip.encode_image(images).float().sum().backward()
    assert clip.visual.conv1.weight.grad is not None


@pytest.mark.parametrize("prefetch", [0, 2])
def test_host_streamed_batches_equal_the_resident_ones(prefetch):
    images = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8)
    order = torch.randperm(300).split(64)
    streamed = list(BatchStream(images, CUDA, prefetch)(order))
    resident = list(BatchStream(images.to(CUDA), CUDA, prefetch)(order))
    for a, b, index in zip(streamed, resident, order, strict=True):
        assert a.device.type == "cuda" and torch.equal(a, b) and torch.equal(a.cpu(), images[index])
    assert torch.equal(torch.cat(list(BatchStream(images, CUDA, prefetch)(in_order(300, 64)))).cpu(), images)


def test_a_streamed_trial_trains_as_a_resident_one(tiny_config, monkeypatch):
    import clipstudy.engine.trainer as trainer_module

    resident = Trainer(cuda_config(tiny_config, "lora", train__epochs=2)).fit()
    monkeypatch.setattr(trainer_module, "GPU_RESIDENT_BYTES", 0)
    trainer = Trainer(cuda_config(tiny_config, "lora", train__epochs=2))
    assert trainer.sources["train"][0].device.type == "cpu"
    streamed = trainer.fit()
    for a, b in zip(resident.history, streamed.history, strict=True):
        assert a.get("train/loss") == b.get("train/loss") and a["val/acc"] == b["val/acc"]


def test_the_step_loop_waits_for_the_gpu_only_at_the_finite_checks(tiny_config):
    """No host synchronisation per step, with the seed-000 augmentation and Mixup/CutMix: across an epoch of
    about 30 steps CUDA's sync debug mode sees the finite-loss checks (every 25 steps and the last) and the
    epoch's two totals (loss, accuracy), nothing else."""
    cfg = cuda_config(tiny_config, "full_ft", data__samples_per_class=160, train__batch_size=16, **SEED000)
    trainer = Trainer(cfg)
    trainer._train_epoch(1)  # warm-up: allocator, kernels
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            trainer._train_epoch(2)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "called a synchronizing" in str(w.message)]
    steps = trainer.steps_per_epoch
    checks = len({0, 25, steps - 1} & set(range(steps)))
    assert steps >= 26 and len(syncs) <= checks + 2, (steps, len(syncs))


def test_cuda_uses_fused_adamw_and_bf16(tiny_config):
    trainer = Trainer(cuda_config(tiny_config, "lora"))
    assert trainer.optimizer.defaults["fused"] is True and trainer.runtime["precision"] == "bf16"


@pytest.mark.slow
def test_a_compiled_trial_matches_the_eager_one_on_cuda(tiny_config):
    eager, compiled = (
        Trainer(cuda_config(tiny_config, "lora", train__compile=c, train__epochs=2)).fit() for c in (0, 1)
    )
    for a, b in zip(eager.history, compiled.history, strict=True):
        assert b["val/loss"] == pytest.approx(a["val/loss"], rel=2e-2)
    assert abs(compiled.metrics["test/acc"] - eager.metrics["test/acc"]) <= 0.05
