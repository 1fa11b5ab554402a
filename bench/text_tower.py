"""Cost of a training step whose text tower trains (LoRA on both towers, text head), against a vision-only one.

    .venv/bin/python bench/text_tower.py [--batch-size 64] [--warmup 3] [--steps 5] [--before-templates 2]

ViT-B-32 with random weights (no download) on CPU, fp32, 100 classes named as CIFAR-100's with its 18
templates (`prompts.custom`, `prompts.classnames` on synthetic images). A step is the engine's forward
(`Trainer._forward`: live class embeddings through the text tower), cross-entropy, backward and the
optimizer step, on one fixed batch; `--warmup` steps are run first and not timed, then the rows' timed
steps take turns (so a busy machine slows them alike) and each row reports its median step. Rows:

- vision-only: `lora.towers: [vision]` and a text head (its class embeddings encoded once, at build);
- both towers, after: `lora.towers: [vision, text]` with `prompts.train_templates: sample` (100 prompts a
  step) and prompts cut to their longest EOT token (`clipstudy.models.text.encode_prompts`);
- both towers, before: `train_templates: all` (100 x T prompts a step), 77 tokens each (truncation off).
  At T = 18 its activations need tens of GiB; `--before-templates T` (default 2) measures it with T of
  the 18 templates, and the 18-template step is then extrapolated (the text tower's cost is linear in
  the number of prompts).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from unittest import mock

import torch
import torch.nn.functional as F
from _common import machine

from clipstudy.data.templates import CIFAR_TEMPLATES, humanize
from clipstudy.engine import Trainer
from clipstudy.studyfile import build_config

CIFAR100_CLASSES = (  # noqa: SIM905  (a list literal of 100 names takes 100 lines)
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard "
    "lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear "
    "pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal "
    "shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank "
    "telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
"""CIFAR-100's class names in label order (torchvision's `classes`)."""


def config(towers: list[str], train_templates: str, templates: list[str], batch_size: int):
    names = [humanize(name) for name in CIFAR100_CLASSES]
    base = {
        "method": "lora",
        "model.arch": "ViT-B-32",
        "model.pretrained": "none",
        "data.name": "synthetic",
        "data.num_classes": len(names),
        "data.samples_per_class": 3,
        "train.device": "cpu",
        "train.precision": "fp32",
        "train.batch_size": batch_size,
        "lora.towers": towers,
        "lora.targets": ["q", "v"],
        "lora.r": 16,
        "head.kind": "text",
        "prompts.custom": templates,
        "prompts.classnames": names,
        "prompts.train_templates": train_templates,
    }
    return build_config(base, {})


@dataclass
class Row:
    label: str
    step: Callable[[], None]
    calls: list[tuple[int, int]]
    """(prompts, tokens) of each batch the text tower encoded."""
    times: list[float] = field(default_factory=list)


def prepare(label: str, trainer: Trainer, batch_size: int, truncate: bool) -> Row:
    """One training step of `trainer` on a fixed batch, as the engine runs it (`Trainer._forward`, CE, backward,
    optimizer step); without `truncate` every prompt is encoded at its full 77 tokens, as before."""
    x, y = next(trainer._train_batches(torch.Generator().manual_seed(0)))
    x, y = x[:batch_size], y[:batch_size]
    calls: list[tuple[int, int]] = []
    trainer.model.clip.token_embedding.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    trainer.model.train()

    def step() -> None:
        with nullcontext() if truncate else mock.patch("clipstudy.models.text.causal_text", return_value=None):
            logits, _ = trainer._forward(x, y)
            loss = F.cross_entropy(logits.float(), y)
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.optimizer.step()

    return Row(label, step, calls)


def measure(rows: list[Row], warmup: int, steps: int) -> None:
    """Warm every row up, then time their steps in turn (round-robin), so that whatever else the machine
    runs meanwhile slows every row alike."""
    for row in rows:
        for _ in range(warmup):
            row.step()
        row.calls.clear()
    for _ in range(steps):
        for row in rows:
            start = time.perf_counter()
            row.step()
            row.times.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--before-templates", type=int, default=2, help="templates the 'before' row encodes (18 needs tens of GiB)"
    )
    args = parser.parse_args()
    every, before, both = list(CIFAR_TEMPLATES), args.before_templates, ["vision", "text"]
    setups = [
        ("vision-only LoRA, text head", ["vision"], "all", every, True),
        ("both towers, after: sample + truncation", ["vision", "text"], "sample", every, True),
        (f"both towers, before: all of {before} templates, 77 tokens", both, "all", every[:before], False),
    ]
    rows = [
        prepare(label, Trainer(config(towers, mode, templates, args.batch_size)), args.batch_size, truncate)
        for label, towers, mode, templates, truncate in setups
    ]
    measure(rows, args.warmup, args.steps)
    print(f"machine: {machine()}; ViT-B-32 random weights, fp32, batch {args.batch_size}, 100 classes")
    print(f"{args.warmup} warm-up + {args.steps} timed steps each, interleaved; median step time\n")
    print("| step | prompts x tokens encoded per step | step s | img/s | vs vision-only |\n|---|---|---|---|---|")
    vision_s = statistics.median(rows[0].times)
    for row in rows:
        step_s = statistics.median(row.times)
        encoded = " + ".join(f"{n} x {t}" for n, t in row.calls[: len(row.calls) // args.steps]) or "none"
        print(f"| {row.label} | {encoded} | {step_s:.2f} | {args.batch_size / step_s:.2f} | {step_s / vision_s:.2f}x |")
    if before < len(every):
        full_s = vision_s + (step_s - vision_s) * len(every) / before
        print(
            f"| both towers, before: all 18 templates (extrapolated) | 1800 x 77 | {full_s:.2f} "
            f"| {args.batch_size / full_s:.2f} | {full_s / vision_s:.2f}x |"
        )


if __name__ == "__main__":
    main()
