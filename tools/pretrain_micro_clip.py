"""Pretrain `clipstudy-micro` contrastively on rendered, captioned images; write the weights clipstudy ships.

    .venv/bin/python tools/pretrain_micro_clip.py [--images 40000] [--epochs 12] [--seed 0] [--out DIR]

The corpus (`clipstudy.data.rendered`): shapes in colours, sizes, textures, places and counts, digits and
letters drawn with PIL's bundled font, some blurred to 8-16 px and back, each image with a caption drawn
anew every epoch from several phrasings. The model is trained with open_clip's CLIP loss (InfoNCE over the
batch, learnt temperature) and AdamW with warm-up and a cosine decay. Everything is seeded: the corpus is
rendered in chunks seeded by (seed, chunk), so the worker count does not change it, and training runs on
a fixed number of threads.

Written to `--out` (default: the package's `clipstudy/models/pretrained/clipstudy-micro-synthetic/`):
`open_clip_model.safetensors` (fp16, loaded as fp32), `open_clip_config.json` (open_clip's Hub format: the
model config and the preprocessing) and `pretraining.json` (the corpus, the seed, the recipe, the
held-out retrieval accuracy and the time it took). `--check` trains and compares its retrieval accuracy
with the shipped `pretraining.json` instead of writing anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.loss import ClipLoss
from safetensors.torch import save_file

from clipstudy.data import rendered
from clipstudy.models.build import make_tokenizer  # importing it registers the packaged architectures
from clipstudy.models.names import MICRO_ARCH, PACKAGED_WEIGHTS, WEIGHTS_FILE
from clipstudy.models.text import encode_prompts

IMAGE_SIZE = 32
CHUNK = 1000
HELD_OUT_CHUNK = 10_000
"""Chunk index of the held-out set: far from the training chunks, so a larger corpus never overlaps it."""
RETRIEVAL_POOL = 1000


def render_chunk(seed: int, chunk: int) -> tuple[np.ndarray, list[rendered.Scene]]:
    rng = np.random.default_rng([seed, chunk])
    scenes = [rendered.draw_scene(rng) for _ in range(CHUNK)]
    return np.stack([rendered.render(scene, IMAGE_SIZE, rng) for scene in scenes]), scenes


def render_corpus(seed: int, chunks: list[int]) -> tuple[torch.Tensor, list[rendered.Scene]]:
    """[N, 3, 32, 32] uint8 and the scenes, rendered in processes on every core."""
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        parts = list(pool.map(render_chunk, [seed] * len(chunks), chunks))
    images = torch.from_numpy(np.concatenate([p[0] for p in parts])).permute(0, 3, 1, 2).contiguous()
    return images, [scene for p in parts for scene in p[1]]


def captions(scenes: list[rendered.Scene], seed: int, epoch: int) -> list[str]:
    rng = np.random.default_rng([seed, 1_000_000 + epoch])
    return [rendered.caption(scene, rng) for scene in scenes]


def normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def retrieval_accuracy(model: torch.nn.Module, tokenizer, images: torch.Tensor, texts: list[str]) -> float:
    """Image-to-text top-1 over pools of 1,000 held-out pairs: right when the best caption reads as the image's
    own (captions such as 'a triangle shape.' recur, so the text is compared, not the index)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(texts), RETRIEVAL_POOL):
            pool_texts = texts[start : start + RETRIEVAL_POOL]
            image = F.normalize(model.encode_image(normalise(images[start : start + RETRIEVAL_POOL])), dim=-1)
            text = F.normalize(encode_prompts(model, tokenizer(pool_texts)), dim=-1)
            best = (image @ text.T).argmax(dim=1).tolist()
            correct += sum(pool_texts[j] == pool_texts[i] for i, j in enumerate(best))
    return correct / len(texts)


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    images, scenes = render_corpus(args.seed, list(range(args.images // CHUNK)))
    held_images, held_scenes = render_corpus(args.seed, list(range(HELD_OUT_CHUNK, HELD_OUT_CHUNK + 2)))
    held_texts = captions(held_scenes, args.seed, epoch=-1)
    render_s = time.perf_counter() - started
    print(f"rendered {len(images)} + {len(held_images)} held-out images in {render_s:.0f} s", flush=True)

    model = open_clip.create_model(MICRO_ARCH, pretrained=None)
    tokenizer = make_tokenizer(MICRO_ARCH)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=args.lr
    )
    steps_per_epoch = len(images) // args.batch_size
    total = steps_per_epoch * args.epochs
    warmup = min(500, total // 4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        ),
    )
    loss_fn = ClipLoss()
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        texts = captions(scenes, args.seed, epoch)
        order = torch.randperm(len(images), generator=generator)
        loss_sum, epoch_start = 0.0, time.perf_counter()
        for step in range(steps_per_epoch):
            index = order[step * args.batch_size : (step + 1) * args.batch_size]
            image = F.normalize(model.encode_image(normalise(images[index])), dim=-1)
            text = F.normalize(encode_prompts(model, tokenizer([texts[i] for i in index.tolist()])), dim=-1)
            loss = loss_fn(image, text, model.logit_scale.exp())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            loss_sum += loss.item()
        accuracy = retrieval_accuracy(model, tokenizer, held_images, held_texts)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / steps_per_epoch:.3f}, held-out retrieval "
            f"{accuracy:.3f}, {time.perf_counter() - epoch_start:.0f} s",
            flush=True,
        )
    model.half().float()  # as shipped: fp16 weights, loaded as fp32
    accuracy = retrieval_accuracy(model, tokenizer, held_images, held_texts)
    print(f"as shipped (fp16 weights): held-out retrieval {accuracy:.3f}", flush=True)
    return {
        "model": model,
        "retrieval_accuracy": accuracy,
        "seconds": time.perf_counter() - started,
        "render_seconds": render_s,
        "steps": total,
    }


def hub_config() -> dict:
    """open_clip's Hub `open_clip_config.json`: the model config and the preprocessing the weights expect."""
    return {
        "model_cfg": open_clip.get_model_config(MICRO_ARCH),
        "preprocess_cfg": {
            "mean": list(OPENAI_DATASET_MEAN),
            "std": list(OPENAI_DATASET_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }


def record(args: argparse.Namespace, result: dict) -> dict:
    return {
        "arch": MICRO_ARCH,
        "tag": "synthetic",
        "corpus": (
            f"{args.images} images of {IMAGE_SIZE} px rendered by clipstudy.data.rendered (seed {args.seed}): one to "
            f"three shapes ({', '.join(rendered.SHAPES)}) in {len(rendered.COLOURS)} colours, 2 sizes, "
            f"{len(rendered.TEXTURES)} textures and 5 places, or a digit (0-9, half in PIL's bundled font, half "
            "drawn as jittered pen strokes) or a capital letter in that font, slanted, in 4 pen widths, a quarter "
            "of them white on black or black on white; shapes 3 in 5 at full resolution and glyphs 1 in 3, the "
            "rest blurred to 16, 12 or 8 px and back; "
            "each captioned anew every epoch in one of 5-8 phrasings"
        ),
        "seed": args.seed,
        "recipe": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "schedule": "linear warm-up then cosine, per step",
            "loss": "open_clip ClipLoss",
            "threads": args.threads,
            "steps": result["steps"],
        },
        "held_out_retrieval_accuracy": round(result["retrieval_accuracy"], 4),
        "held_out": (
            f"2 x {CHUNK} rendered pairs (chunks {HELD_OUT_CHUNK}-{HELD_OUT_CHUNK + 1}), image-to-caption top-1 "
            f"in pools of {RETRIEVAL_POOL}"
        ),
        "seconds": round(result["seconds"]),
        "machine": (
            f"{os.cpu_count()} cores, {platform.machine()}, torch {torch.__version__}, python {sys.version.split()[0]}"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40_000)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=PACKAGED_WEIGHTS[MICRO_ARCH]["synthetic"])
    parser.add_argument("--check", action="store_true", help="train, then compare with the shipped pretraining.json")
    args = parser.parse_args()
    result = train(args)
    summary = record(args, result)
    if args.check:
        shipped = json.loads((args.out / "pretraining.json").read_text())["held_out_retrieval_accuracy"]
        gap = abs(summary["held_out_retrieval_accuracy"] - shipped)
        print(
            f"retrieval {summary['held_out_retrieval_accuracy']:.4f} vs shipped {shipped:.4f}: {100 * gap:.2f} points"
        )
        sys.exit(0 if gap <= 0.01 else 1)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().half().contiguous() for name, tensor in result["model"].state_dict().items()}
    save_file(weights, args.out / WEIGHTS_FILE)
    (args.out / "open_clip_config.json").write_text(json.dumps(hub_config(), indent=2) + "\n")
    (args.out / "pretraining.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
