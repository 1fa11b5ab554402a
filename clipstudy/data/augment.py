"""Batched image transforms with per-sample randomness (kornia), and Mixup/CutMix (torchvision v2).

Input is the stored uint8 batch [B, 3, H, W] on any device; output is float32 [B, 3, size, size],
normalised, on the same device. The train transform runs, in this order:

1. horizontal flip, colour jitter (brightness, contrast, saturation, hue) and one affine warp
   (rotation and translation fused) at the *stored* resolution, which is cheap for CIFAR's 32 px;
2. normalisation, still at the stored resolution (it commutes with resampling, whose weights sum to 1);
3. a single crop-and-resize to `size` (RandomResizedCrop(scale=crop_scale), or the whole image), done as
   two batched matrix products with per-sample bicubic (or bilinear) weights;
4. RandomErasing (erased pixels are 0, the normalised mean, as in torchvision).

The per-image torchvision pipeline of the original study upsamples first and runs every op at 224 px;
doing the work before the one upsampling gives the same kinds of variation for a fraction of the cost
(see docs/benchmarks.md). Random parameters are drawn by kornia's samplers (the flips by one Bernoulli
draw) from torch's global CPU RNG, so seeding it (the engine does, per epoch) reproduces a batch exactly.

On a GPU nothing here waits for the device: the drawn parameters travel with non-blocking copies and
are handed to kornia (`aug(x, params=...)`), so its ops find them on the device instead of copying them
there with a blocking copy, which synchronises the host with the GPU (measured: 6 waits a step, a third
of a LoRA step on an H200, bench/gpu_check.py). Kept on the host: what kornia reads in Python (the
jitter's op order, the input shape, which samples apply), and the flip is a `torch.where` over a mask
rather than kornia's boolean indexing, which waits for the device to count the selected rows.

Resampling uses the kernels with antialiasing of `F.interpolate(mode=..., antialias=True)` (PIL's):
bicubic (open_clip's CLIP preprocessing) or bilinear (torchvision's `Resize` default), identical to it
for a whole-image resize, widened when shrinking. Resampled values are not clamped, so bicubic overshoot
at sharp edges survives, as with `F.interpolate` on float tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms import v2

from clipstudy.config import AugmentConfig


def cubic(t: Tensor, a: float = -0.5) -> Tensor:
    """Keys' cubic convolution kernel; a = -0.5 as in PIL and torch's antialiased bicubic."""
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = (((t - 5) * t + 8) * t - 4) * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def linear(t: Tensor) -> Tensor:
    """The triangle kernel of bilinear resampling."""
    return (1 - t.abs()).clamp(min=0)


Interpolation = Literal["bicubic", "bilinear"]
KERNELS: dict[str, Callable[[Tensor], Tensor]] = {"bicubic": cubic, "bilinear": linear}


def resolve_interpolation(setting: str, model_default: str) -> Interpolation:
    """`model.interpolation`: the setting, or for 'auto' the model's own preprocessing (bicubic if unknown)."""
    choice = model_default if setting == "auto" else setting
    return choice if choice in KERNELS else "bicubic"


def resample_weights(
    start: Tensor, length: Tensor, in_size: int, out_size: int, interpolation: Interpolation = "bicubic"
) -> Tensor:
    """[B, out_size, in_size] weights mapping pixels [start, start + length) of a row onto `out_size` pixels.

    Pixel centres sit at i + 0.5 (align_corners=False). When shrinking, the kernel is stretched by the
    scale (antialiasing); each row is renormalised over the pixels it covers, which handles the borders.
    """
    scale = length / out_size
    support = scale.clamp(min=1.0)
    steps = torch.arange(out_size, dtype=torch.float32, device=start.device) + 0.5
    centres = start[:, None] + steps * scale[:, None]
    pixels = torch.arange(in_size, dtype=torch.float32, device=start.device) + 0.5
    weights = KERNELS[interpolation]((pixels - centres[:, :, None]) / support[:, None, None])
    return weights / weights.sum(-1, keepdim=True)


def crop_resize(
    x: Tensor,
    top: Tensor,
    left: Tensor,
    height: Tensor,
    width: Tensor,
    size: int,
    interpolation: Interpolation = "bicubic",
) -> Tensor:
    """Resample box b of image b ([B] float pixel coordinates) to size x size: Wy @ x @ Wx^T."""
    rows = resample_weights(top, height, x.shape[-2], size, interpolation)
    cols = resample_weights(left, width, x.shape[-1], size, interpolation)
    with torch.autocast(x.device.type, enabled=False):  # keep pixel values fp32 under an engine's autocast
        return rows[:, None] @ (x.float() @ cols.transpose(1, 2)[:, None])


def resize(x: Tensor, size: int, interpolation: Interpolation = "bicubic") -> Tensor:
    """Resize of a float batch to size x size (antialiased when shrinking)."""
    if x.shape[-2:] == (size, size):
        return x
    height, width = x.shape[-2:]
    zero = torch.zeros(1, device=x.device)
    rows = resample_weights(zero, torch.full_like(zero, height), height, size, interpolation)[0]
    cols = resample_weights(zero, torch.full_like(zero, width), width, size, interpolation)[0]
    with torch.autocast(x.device.type, enabled=False):
        return rows @ (x.float() @ cols.T)


class Normalize(nn.Module):
    """(x / scale - mean) / std in one fused op, on the input's device."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], scale: float = 1.0):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("gain", 1.0 / (scale * std_t), persistent=False)
        self.register_buffer("shift", -mean_t / std_t, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.shift.to(x.device), x, self.gain.to(x.device))


class EvalTransform(nn.Module):
    """uint8 [B, 3, H, W] -> normalised float32 [B, 3, size, size], resized; deterministic."""

    def __init__(
        self, size: int, mean: Sequence[float], std: Sequence[float], interpolation: Interpolation = "bicubic"
    ):
        super().__init__()
        self.size, self.interpolation = size, interpolation
        self.normalize = Normalize(mean, std, scale=255.0)

    def forward(self, x: Tensor) -> Tensor:
        return resize(self.normalize(x.float()), self.size, self.interpolation)


class TrainTransform(nn.Module):
    """Per-sample random augmentation; see the module docstring for the order of the ops."""

    def __init__(
        self,
        cfg: AugmentConfig,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        interpolation: Interpolation = "bicubic",
    ):
        super().__init__()
        self.size, self.interpolation = size, interpolation
        self.hflip = cfg.hflip
        pre: list[nn.Module] = []
        if cfg.color_jitter or cfg.hue:
            jitter = cfg.color_jitter
            pre.append(K.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter, hue=cfg.hue, p=1.0))
        if cfg.rotation or cfg.translate:
            translate = (cfg.translate, cfg.translate) if cfg.translate else None
            pre.append(K.RandomAffine(degrees=cfg.rotation, translate=translate, resample="bilinear", p=1.0))
        self.pre = nn.ModuleList(pre)
        self.normalize = Normalize(mean, std)
        self.crop = K.RandomResizedCrop((size, size), scale=cfg.crop_scale) if cfg.crop_scale else None
        self.erase = K.RandomErasing(p=cfg.erasing, scale=cfg.erasing_scale) if cfg.erasing else None

    def samplers(self) -> list[nn.Module]:
        """The kornia augmentations whose samplers draw this transform's random parameters."""
        return [op for op in (*self.pre, self.crop, self.erase) if op is not None]

    def _apply(self, fn, *args, **kwargs):
        """Moving the transform to a GPU (`.to(device)`) moves kornia's samplers with it, which then draw on the
        GPU and check their draws in Python: four host waits per op and batch (measured on an H200). They
        draw on the CPU instead (so the CPU RNG seeds them on any device); the parameters travel, non-blocking."""
        out = super()._apply(fn, *args, **kwargs)
        for op in self.samplers():
            op.set_rng_device_and_dtype(torch.device("cpu"), torch.float32)
        return out

    def forward(self, x: Tensor) -> Tensor:
        x = x.float().div_(255.0)
        if self.hflip:
            x = self._flip(x)
        for op in self.pre:
            x = op(x, params=_to_device(op.forward_parameters(x.shape), x.device))
        x = self.normalize(x)
        x = resize(x, self.size, self.interpolation) if self.crop is None else self._random_crop(x)
        return x if self.erase is None else self._erase(x)

    def _flip(self, x: Tensor) -> Tensor:
        """Each image mirrored with probability `hflip`: one Bernoulli draw per image, one `where`."""
        flip = torch.bernoulli(torch.full((len(x),), float(self.hflip))).bool()
        return torch.where(flip.to(x.device, non_blocking=True)[:, None, None, None], x.flip(-1), x)

    def _random_crop(self, x: Tensor) -> Tensor:
        """kornia samples the boxes (as torchvision's RandomResizedCrop does); the resampling is ours."""
        corners = self.crop.forward_parameters(x.shape)["src"].to(x.device, non_blocking=True)  # [B, 4, (x, y)]
        left, top = corners[:, 0, 0], corners[:, 0, 1]
        width = corners[:, 2, 0] - left + 1
        height = corners[:, 2, 1] - top + 1
        return crop_resize(x, top, left, height, width, self.size, self.interpolation)

    def _erase(self, x: Tensor) -> Tensor:
        """kornia samples the rectangles; one masked fill applies them to the whole batch."""
        params = {k: v.to(x.device, non_blocking=True) for k, v in self.erase.forward_parameters(x.shape).items()}
        rows = torch.arange(x.shape[-2], device=x.device)
        cols = torch.arange(x.shape[-1], device=x.device)
        ys, xs = params["ys"][:, None], params["xs"][:, None]
        in_rows = (rows >= ys) & (rows < ys + params["heights"][:, None])
        in_cols = (cols >= xs) & (cols < xs + params["widths"][:, None])
        mask = in_rows[:, :, None] & in_cols[:, None, :] & params["batch_prob"].bool()[:, None, None]
        return x.masked_fill_(mask[:, None], 0.0)


HOST_PARAMS = frozenset({"batch_prob", "order", "forward_input_shape"})
"""kornia parameters read in Python (which samples apply, the jitter's op order, the input shape): on the host."""


def _to_device(params: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """kornia's drawn parameters on `device` by non-blocking copies, but for those it reads on the host."""
    return {k: v if k in HOST_PARAMS else v.to(device, non_blocking=True) for k, v in params.items()}


def build_train_transform(
    cfg: AugmentConfig,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    interpolation: Interpolation = "bicubic",
) -> nn.Module:
    return TrainTransform(cfg, size, mean, std, interpolation)


def build_eval_transform(
    size: int, mean: Sequence[float], std: Sequence[float], interpolation: Interpolation = "bicubic"
) -> nn.Module:
    return EvalTransform(size, mean, std, interpolation)


class MixBatch:
    """Batch-level Mixup / CutMix (torchvision v2), returning soft targets [B, C] whose rows sum to 1.

    Label smoothing is left to the loss. Every draw (mix or not, which mix, lambda, box) comes from
    torch's global RNG.
    """

    def __init__(self, cfg: AugmentConfig, num_classes: int):
        self.num_classes = num_classes
        self.prob = cfg.mix_prob
        self.mixers: list[nn.Module] = []
        if cfg.mixup_alpha > 0:
            self.mixers.append(v2.MixUp(alpha=cfg.mixup_alpha, num_classes=num_classes))
        if cfg.cutmix_alpha > 0:
            self.mixers.append(v2.CutMix(alpha=cfg.cutmix_alpha, num_classes=num_classes))
        self._active = cfg.mixing

    @property
    def active(self) -> bool:
        return self._active

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self._active and float(torch.rand(())) < self.prob:
            pick = int(torch.randint(len(self.mixers), ())) if len(self.mixers) > 1 else 0
            return self.mixers[pick](x, y)
        return x, F.one_hot(y, self.num_classes).to(torch.float32)
