"""Running a model over a split for evaluation: in order, a batch at a time, on the trial's device, under its
autocast.

The trainer owns one `Evaluator`: it predicts validation and test with it (the WiSE-FT curve too, through
`Trainer.predict`), encodes the features a frozen backbone caches, and hands it to the transfer evaluation
(base-to-new, retention), so every evaluation of a trial batches, transforms and casts alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from clipstudy.engine.runtime import autocast

Model = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Evaluator:
    """How a trial runs a model outside training (no gradients): `predict` logits, `encode` features."""

    device: torch.device
    transform: Callable[[torch.Tensor], torch.Tensor]
    """uint8 images -> the model's normalised input (the eval transform)."""
    batch_size: int
    autocast_dtype: torch.dtype | None = None
    """None: fp32, no autocast."""

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.autocast_dtype)

    def batches(self, inputs: torch.Tensor, images: bool = True) -> Iterator[torch.Tensor]:
        """`inputs` in order, `batch_size` rows at a time, on the device: images through the eval transform,
        precomputed features (`images=False`) as they are."""
        for start in range(0, len(inputs), self.batch_size):
            batch = inputs[start : start + self.batch_size].to(self.device, non_blocking=True)
            yield self.transform(batch) if images else batch

    @torch.no_grad()
    def predict(self, model: Model, inputs: torch.Tensor, images: bool = True) -> torch.Tensor:
        """`model` of every batch, as float32, concatenated on the device."""
        outputs = []
        for batch in self.batches(inputs, images):
            with self.autocast():
                outputs.append(model(batch).float())
        return torch.cat(outputs)

    @torch.no_grad()
    def encode(self, model: Model, images: torch.Tensor) -> torch.Tensor:
        """`model` of every batch of images, as float32, concatenated on the CPU: features to cache, moved off
        the device batch by batch so a split's features need not fit on it."""
        outputs = []
        for batch in self.batches(images):
            with self.autocast():
                outputs.append(model(batch).float().cpu())
        return torch.cat(outputs)
