"""Throughput of the batched kornia train transform vs the original per-image PIL pipeline.

Run: .venv/bin/python bench/augment_throughput.py [--images 512] [--batch 128] [--threads 2] [--rounds 5]

Both sides start from CIFAR-like 32x32 uint8 images and produce normalised 224 px float tensors with
the original study's augmentation (seed 000): RandomResizedCrop(scale 0.8-1), horizontal flip 0.5,
ColorJitter(0.2, 0.2, 0.2, hue 0.1), rotation 15 deg, translate 0.1, RandomErasing 0.5 (0.02-0.33).
The PIL baseline runs as the study ran it: one image at a time, in this process, and through a
DataLoader with 2 worker processes (one per core).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from clipstudy.config import AugmentConfig
from clipstudy.data.augment import build_eval_transform, build_train_transform

MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's
STD = (0.26862954, 0.26130258, 0.27577711)
SIZE = 224
SEED000 = AugmentConfig(
    crop_scale=(0.8, 1.0),
    hflip=0.5,
    color_jitter=0.2,
    hue=0.1,
    rotation=15,
    translate=0.1,
    erasing=0.5,
    erasing_scale=(0.02, 0.33),
)


def pil_pipeline() -> T.Compose:
    return T.Compose(
        [
            T.Resize(SIZE, interpolation=T.InterpolationMode.BICUBIC),
            T.RandomResizedCrop(SIZE, scale=(0.8, 1.0)),
            T.RandomHorizontalFlip(),
            T.ColorJitter(0.2, 0.2, 0.2, 0.1),
            T.RandomRotation(15),
            T.RandomAffine(0, translate=(0.1, 0.1)),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
            T.RandomErasing(0.5, (0.02, 0.33)),
        ]
    )


class PilImages(Dataset):
    def __init__(self, images: list[Image.Image]):
        self.images, self.transform = images, pil_pipeline()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.images[index])


def best_rates(runs: dict[str, Callable[[], None]], n: int, rounds: int) -> dict[str, float]:
    """Best images/s of each run over `rounds` interleaved rounds, after one warm-up each.

    Interleaving and taking the best keeps other load on a shared machine from favouring either side.
    """
    for run in runs.values():
        run()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: n / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8)
    pils = [Image.fromarray(a) for a in data.permute(0, 2, 3, 1).numpy().astype(np.uint8)]
    train = build_train_transform(SEED000, SIZE, MEAN, STD)
    evaluate = build_eval_transform(SIZE, MEAN, STD)
    pil = pil_pipeline()

    def batched(transform):
        def run() -> None:
            with torch.no_grad():
                for start in range(0, args.images, args.batch):
                    transform(data[start : start + args.batch])

        return run

    def per_image() -> None:
        for image in pils:
            pil(image)

    loader = DataLoader(PilImages(pils), batch_size=args.batch, num_workers=2, persistent_workers=True)

    def workers() -> None:
        for _ in loader:
            pass

    rates = best_rates(
        {
            "PIL per image, 1 process": per_image,
            "PIL per image, DataLoader 2 workers": workers,
            f"kornia batched train (batch {args.batch})": batched(train),
            f"batched eval resize (batch {args.batch})": batched(evaluate),
        },
        args.images,
        args.rounds,
    )
    rows = list(rates.items())
    print(
        f"{args.images} images 32 px -> {SIZE} px, torch threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other load skews the figures)"
    )
    print(f"{'pipeline':<42}{'images/s':>10}")
    for name, value in rows:
        print(f"{name:<42}{value:>10.0f}")
    kornia_rate = rows[2][1]
    print(
        f"speed-up of batched train vs PIL 1 process: {kornia_rate / rows[0][1]:.1f}x, "
        f"vs PIL 2 workers: {kornia_rate / rows[1][1]:.1f}x"
    )


if __name__ == "__main__":
    main()
