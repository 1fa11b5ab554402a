"""A cached linear-probe epoch vs one that recomputes the frozen backbone (goal: >= 20x).

    uv run python bench/feature_cache.py [--arch ViT-B-32] [--images 512]

Both run the same head training through `Trainer`: one on features computed once (and stored on
disk), one pushing every image through the image encoder every epoch.
"""

from __future__ import annotations

import argparse
import time

from _common import machine, synthetic_config

import clipstudy.engine.trainer as trainer_module
from clipstudy.engine import Trainer


def epoch_seconds(trainer: Trainer) -> float:
    trainer._run_epoch(1)
    start = time.perf_counter()
    trainer._run_epoch(2)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    cfg = synthetic_config("linear_probe", args.arch, args.images, args.batch_size)
    print(f"machine: {machine()}")
    start = time.perf_counter()
    cached = Trainer(cfg)
    setup = time.perf_counter() - start
    assert cached.cached
    cached_s = epoch_seconds(cached)
    trainer_module.uses_cached_features = lambda method, cfg: False
    live = Trainer(cfg)
    live_s = epoch_seconds(live)
    print(
        "| model | train images | cached epoch (s) | recomputing epoch (s) | speed-up | first build incl. "
        "feature extraction (s) |\n|---|---|---|---|---|---|"
    )
    print(
        f"| {args.arch} | {len(cached.data.train)} | {cached_s:.4f} | {live_s:.2f} | {live_s / cached_s:,.0f}x "
        f"| {setup:.1f} |"
    )


if __name__ == "__main__":
    main()
