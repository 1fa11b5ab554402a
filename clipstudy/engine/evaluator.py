"""Running a model over a split for evaluation: in order, a batch at a time, on the trial's device, under its
autocast and attention kernels.

The trainer owns one `Evaluator`: it predicts validation and test with it (the WiSE-FT curve too, through
`Trainer.predict`), encodes the features a frozen backbone caches, and hands it to the transfer evaluation
(base-to-new, retention), so every evaluation of a trial batches, transforms and casts alike. A split held
in host memory streams to the GPU through `BatchStream` (gathered ahead, pinned, copied on a side stream).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from clipstudy.engine.runtime import compute
from clipstudy.engine.streaming import BatchStream, in_order

Model = Callable[[torch.Tensor], torch.Tensor]
OFFLOAD_BYTES = 256 << 20
"""`encode` moves features to the host in chunks of about this size: one wait for the GPU per chunk, not
per batch, and a split's features still need not fit on the device."""


@dataclass(frozen=True)
class Evaluator:
    """How a trial runs a model outside training (no gradients): `predict` logits, `encode` features."""

    device: torch.device
    transform: Callable[[torch.Tensor], torch.Tensor]
    """uint8 images -> the model's normalised input (the eval transform)."""
    batch_size: int
    autocast_dtype: torch.dtype | None = None
    """None: fp32, no autocast."""
    attention: str = "auto"
    """`train.attention`."""
    prefetch: int = 2
    """`train.prefetch`: batches gathered ahead when `inputs` streams from host memory."""

    def autocast(self) -> contextlib.AbstractContextManager:
        return compute(self.device, self.autocast_dtype, self.attention)

    def batches(self, inputs: torch.Tensor, images: bool = True) -> Iterator[torch.Tensor]:
        """`inputs` in order, `batch_size` rows at a time, on the device: images through the eval transform,
        precomputed features (`images=False`) as they are."""
        stream = BatchStream(inputs, self.device, self.prefetch)
        for batch in stream(in_order(len(inputs), self.batch_size)):
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
        """`model` of every batch of images, as float32, concatenated on the CPU: features to cache."""
        chunks, pending, size = [], [], 0
        for batch in self.batches(images):
            with self.autocast():
                features = model(batch).float()
            pending.append(features)
            size += features.numel() * features.element_size()
            if size >= OFFLOAD_BYTES:
                chunks.append(torch.cat(pending).cpu())
                pending, size = [], 0
        if pending:
            chunks.append(torch.cat(pending).cpu())
        return torch.cat(chunks)
