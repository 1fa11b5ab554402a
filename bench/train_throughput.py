"""Train-step throughput (images/s) per method through the engine, for the tiny model and ViT-B-32.

    uv run python bench/train_throughput.py [--archs clipstudy-tiny ViT-B-32] [--images 256]

Each row is one training epoch of `Trainer` on synthetic images (random weights, no download);
the first epoch's warm-up is excluded by running a short epoch first. On a GPU it uses bf16
autocast at the model's native resolution (224 px for ViT-B-32).
"""

from __future__ import annotations

import argparse

import torch
from _common import machine, synthetic_config

from clipstudy.engine import Trainer

METHODS = ("linear_probe", "full_ft", "lora")


def measure(method: str, arch: str, images: int, batch_size: int, **overrides) -> tuple[float, int]:
    cfg = synthetic_config(method, arch, images, batch_size, **overrides)
    trainer = Trainer(cfg)
    trainer._run_epoch(1)  # warm-up: kernels, allocator, caches
    metrics = trainer._run_epoch(2)
    return metrics["throughput_img_s"], trainer.trainable_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archs", nargs="+", default=["clipstudy-tiny", "ViT-B-32"])
    parser.add_argument("--images", type=int, default=None, help="per epoch; default 2048 tiny, 96 (CPU) / 8192 (GPU)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("| model | method | batch | trainable params | train img/s |\n|---|---|---|---|---|")
    for arch in args.archs:
        images = args.images or (2048 if arch == "clipstudy-tiny" else 8192 if torch.cuda.is_available() else 96)
        for method in METHODS:
            overrides = {"lora.targets": ["q", "v"], "lora.r": 16} if method == "lora" else {}
            if method == "linear_probe":
                overrides["augment.hflip"] = 0.5  # through the backbone, as when augmenting (not the cache)
            rate, params = measure(method, arch, images, args.batch_size, **overrides)
            print(f"| {arch} | {method} | {args.batch_size} | {params:,} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
