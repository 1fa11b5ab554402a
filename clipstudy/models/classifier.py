"""The model every method trains: an image encoder (CLIP's, or an image-only backbone) and a head (plus the
text tower when it adapts)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from clipstudy.models.heads import TextHead
from clipstudy.models.text import ClassPrompts

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@dataclass(frozen=True)
class ParamPart:
    """One part of the model in the parameter counts."""

    name: str
    trainable: int
    total: int
    counted: bool
    """In `total_params`: a prediction runs through this part."""


class ImageClassifier(nn.Module):
    """`clip.encode_image` followed by `head`.

    When the text tower itself trains (LoRA on the text tower), the class embeddings cannot be
    precomputed: `live_prompts` holds the class prompts and the text head's weights are recomputed
    through the text tower on every training forward, from the prompts `prompts.train_templates` picks
    (once per evaluation pass in eval mode, from every template). Plain prompt tokens [C * T, length]
    train on every template.
    """

    def __init__(self, clip: nn.Module, head: nn.Module, live_prompts: ClassPrompts | torch.Tensor | None = None):
        super().__init__()
        self.clip = clip
        self.head = head
        if live_prompts is not None and not isinstance(head, TextHead):
            raise ValueError("live prompts need a TextHead")
        if isinstance(live_prompts, torch.Tensor):
            live_prompts = ClassPrompts(live_prompts, head.weight.shape[0])
        self.live_prompts = live_prompts
        self._eval_class_weights: torch.Tensor | None = None

    @property
    def live_text(self) -> bool:
        return self.live_prompts is not None

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Image features in fp32, whatever dtype the backbone's weights are held in (`model.weights_dtype`),
        so the heads, which stay fp32, run without autocast."""
        return self.clip.encode_image(images).float()

    def class_weights(self) -> torch.Tensor:
        """[C, D] class embeddings through the live text tower: in training mode from the step's prompts
        (with gradients), in eval mode from every template."""
        return self.live_prompts.embeddings(self.clip, training=self.training)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        if not self.live_text:
            return self.head(features)
        if self.training:
            return self.head(features, self.class_weights())
        if self._eval_class_weights is None:
            self._eval_class_weights = self.class_weights()
        return self.head(features, self._eval_class_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images))

    def train(self, mode: bool = True) -> ImageClassifier:
        self._eval_class_weights = None
        return super().train(mode)

    def param_parts(self) -> list[ParamPart]:
        """Trainable and total parameters by part (adapters count in the part they adapt), and whether a
        prediction runs through it: the text tower only does when it is live."""
        visual = {id(p) for p in self.clip.visual.parameters()}
        parts: dict[str, list[nn.Parameter]] = {"image tower": [], "text tower": [], "logit scale/bias": []}
        for name, param in self.clip.named_parameters():
            if id(param) in visual:
                parts["image tower"].append(param)
            else:
                parts["logit scale/bias" if name.startswith("logit_") else "text tower"].append(param)
        parts["head"] = list(self.head.parameters())
        counted = {"image tower": True, "text tower": self.live_text, "logit scale/bias": False, "head": True}
        return [
            ParamPart(
                name, sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params), counted[name]
            )
            for name, params in parts.items()
            if params
        ]

    def param_counts(self) -> tuple[int, int]:
        """(trainable, total): every trainable parameter, over the parameters a prediction runs through (the
        image tower and the head, plus the text tower when it is live)."""
        parts = self.param_parts()
        return sum(part.trainable for part in parts), sum(part.total for part in parts if part.counted)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What training changes: the trainable parameters, and the running statistics of batch norms
        whose weights train (a fine-tuned ResNet's), so a selected or resumed model is whole."""
        state = {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}
        for prefix, module in self.named_modules():
            if isinstance(module, BATCH_NORMS) and any(p.requires_grad for p in module.parameters(recurse=False)):
                state.update({f"{prefix}.{name}": b.detach() for name, b in module.named_buffers(recurse=False)})
        return state
