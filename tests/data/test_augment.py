"""Batched train/eval transforms and MixBatch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipstudy.config import AugmentConfig
from clipstudy.data.augment import MixBatch, build_eval_transform, build_train_transform, resolve_interpolation

MEAN = (0.48, 0.46, 0.41)
STD = (0.27, 0.26, 0.28)
SEED000 = AugmentConfig(
    crop_scale=(0.8, 1.0), hflip=0.5, color_jitter=0.2, hue=0.1, rotation=15, translate=0.1, erasing=0.5
)
SINGLE_OPS = {
    "crop_scale": {"crop_scale": (0.3, 0.5)},
    "hflip": {"hflip": 1.0},
    "color_jitter": {"color_jitter": 0.5},
    "hue": {"hue": 0.4},
    "rotation": {"rotation": 45},
    "translate": {"translate": 0.3},
    "erasing": {"erasing": 1.0},
}


def images(batch=4, size=32, seed=0) -> torch.Tensor:
    """Colourful, asymmetric images (a flip or a hue shift changes them)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, 3, size, size), generator=generator, dtype=torch.uint8)
    x[:, 0, :, : size // 3] = 250
    return x


@pytest.mark.parametrize("size", [32, 48])
def test_train_output_contract(size):
    out = build_train_transform(SEED000, size, MEAN, STD)(images())
    assert out.shape == (4, 3, size, size) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.isfinite(out).all()
    assert -3 < out.mean() < 3 and out.abs().max() < 10


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_eval_normalises_and_resizes_like_interpolate(interpolation):
    eval_tf = build_eval_transform(64, MEAN, STD, interpolation)
    white = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    expected = (1 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(eval_tf(white)[0, :, 10, 10], expected, atol=1e-5)
    for size in (64, 224, 20):  # up, CIFAR's 32 -> 224 like torchvision's Resize, and (antialiased) down
        x = images(size=40 if size != 224 else 32)
        reference = F.interpolate(x.float() / 255, size=(size, size), mode=interpolation, antialias=True)
        reference = (reference - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        assert torch.allclose(build_eval_transform(size, MEAN, STD, interpolation)(x), reference, atol=1e-4)


def test_bilinear_differs_from_bicubic():
    x = images()
    bicubic = build_eval_transform(224, MEAN, STD, "bicubic")(x)
    bilinear = build_eval_transform(224, MEAN, STD, "bilinear")(x)
    assert (bicubic - bilinear).abs().max() > 0.05


@pytest.mark.parametrize(
    ("setting", "model_default", "expected"),
    [
        ("auto", "bicubic", "bicubic"),
        ("auto", "bilinear", "bilinear"),
        ("bilinear", "bicubic", "bilinear"),
        ("auto", "random", "bicubic"),
    ],
)
def test_resolve_interpolation(setting, model_default, expected):
    assert resolve_interpolation(setting, model_default) == expected


def test_train_crop_uses_the_interpolation():
    x = images()
    cfg = AugmentConfig(crop_scale=(1.0, 1.0))
    torch.manual_seed(0)
    bilinear = build_train_transform(cfg, 64, MEAN, STD, "bilinear")(x)
    torch.manual_seed(0)
    bicubic = build_train_transform(cfg, 64, MEAN, STD, "bicubic")(x)
    assert (bicubic - bilinear).abs().max() > 0.05


def test_eval_is_deterministic_and_identity_at_size():
    x = images()
    eval_tf = build_eval_transform(32, MEAN, STD)
    assert torch.equal(eval_tf(x), eval_tf(x))
    expected = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(eval_tf(x), expected, atol=1e-5)


def test_no_ops_train_equals_eval():
    x = images()
    assert torch.allclose(
        build_train_transform(AugmentConfig(), 48, MEAN, STD)(x), build_eval_transform(48, MEAN, STD)(x), atol=1e-5
    )


def test_identical_images_get_different_augmentations():
    x = images(batch=1).repeat(8, 1, 1, 1)
    out = build_train_transform(SEED000, 48, MEAN, STD)(x)
    distinct = {tuple(row.flatten()[:2000].tolist()) for row in out}
    assert len(distinct) == 8


def test_same_global_seed_same_batch():
    transform = build_train_transform(SEED000, 48, MEAN, STD)
    x = images(batch=8)
    torch.manual_seed(3)
    first = transform(x)
    torch.manual_seed(3)
    assert torch.equal(transform(x), first)
    torch.manual_seed(4)
    assert not torch.equal(transform(x), first)


@pytest.mark.parametrize("op", sorted(SINGLE_OPS))
def test_each_op_alone_changes_the_image(op):
    cfg = AugmentConfig(**SINGLE_OPS[op])
    x = images(batch=4)
    reference = build_eval_transform(40, MEAN, STD)(x)
    torch.manual_seed(0)
    out = build_train_transform(cfg, 40, MEAN, STD)(x)
    changed = (out - reference).abs().flatten(1).amax(1)
    assert (changed > 0.1).all(), f"{op} left some image unchanged: {changed.tolist()}"


def test_train_transform_accepts_input_already_at_size():
    x = images(size=48)
    out = build_train_transform(SEED000, 48, MEAN, STD)(x)
    assert out.shape == (4, 3, 48, 48)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_transforms_stay_on_cuda():
    x = images().cuda()
    assert build_train_transform(SEED000, 48, MEAN, STD)(x).device.type == "cuda"
    assert build_eval_transform(48, MEAN, STD)(x).device.type == "cuda"
    y = torch.arange(4, device="cuda")
    assert MixBatch(AugmentConfig(mixup_alpha=1.0, mix_prob=1.0), 4)(x.float(), y)[1].device.type == "cuda"


@pytest.mark.parametrize(
    "cfg",
    [
        AugmentConfig(mixup_alpha=0.8, mix_prob=1.0),
        AugmentConfig(cutmix_alpha=1.0, mix_prob=1.0),
        AugmentConfig(mixup_alpha=0.8, cutmix_alpha=1.0, mix_prob=1.0),
    ],
    ids=["mixup", "cutmix", "both"],
)
def test_mixing_gives_soft_targets_summing_to_one(cfg):
    mix = MixBatch(cfg, num_classes=5)
    assert mix.active
    torch.manual_seed(0)
    x = torch.randn(8, 3, 16, 16)
    y = torch.arange(8) % 5
    mixed, targets = mix(x.clone(), y)
    assert mixed.shape == x.shape and not torch.equal(mixed, x)
    assert targets.shape == (8, 5) and targets.dtype == torch.float32
    assert torch.allclose(targets.sum(1), torch.ones(8))
    assert (targets.max(1).values < 1).any()  # some row really is mixed


@pytest.mark.parametrize("cfg", [AugmentConfig(mixup_alpha=0.8, mix_prob=0.0), AugmentConfig()])
def test_no_mixing_gives_one_hot(cfg):
    mix = MixBatch(cfg, num_classes=5)
    assert not mix.active
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    out, targets = mix(x, y)
    assert torch.equal(out, x) and torch.equal(targets, F.one_hot(y, 5).float())


def test_mix_prob_is_per_batch():
    mix = MixBatch(AugmentConfig(mixup_alpha=1.0, mix_prob=0.5), num_classes=3)
    torch.manual_seed(0)
    y = torch.tensor([0, 1, 2, 0])
    mixed = sum(not torch.equal(mix(torch.randn(4, 3, 4, 4), y)[1], F.one_hot(y, 3).float()) for _ in range(200))
    assert 60 < mixed < 140


def test_moving_the_transform_leaves_its_samplers_drawing_on_the_cpu():
    """kornia moves its samplers with `.to()` (they would then draw on the GPU and wait for it to check the
    draws); the transform keeps them on the CPU in float32, seen here through a dtype move."""
    transform = build_train_transform(SEED000, 48, MEAN, STD).to(torch.float64)
    assert len(transform.samplers()) == 4
    for op in transform.samplers():
        params = op.forward_parameters(torch.Size([2, 3, 48, 48]))
        assert all(v.device.type == "cpu" for v in params.values())
        assert params["batch_prob"].dtype == torch.float32
    torch.manual_seed(0)
    moved = transform(images())
    torch.manual_seed(0)
    assert torch.equal(moved, build_train_transform(SEED000, 48, MEAN, STD)(images()))
