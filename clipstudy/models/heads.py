"""Classification heads on CLIP image features, and the zero-shot (text) classifier."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LinearHead(nn.Module):
    def __init__(self, dim: int, num_classes: int, dropout: float = 0.0, normalize: bool = False):
        super().__init__()
        self.normalize = normalize
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return self.fc(self.dropout(features))


class MLPHead(nn.Module):
    """Two-layer head (an MLP classifier over CLIP features): Dropout-Linear-ReLU-Dropout-Linear.

    `dropout` acts on the input features; `hidden_dropout` on the hidden layer (None = `dropout`).
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        hidden: int,
        dropout: float = 0.0,
        normalize: bool = False,
        hidden_dropout: float | None = None,
    ):
        super().__init__()
        self.normalize = normalize
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(dim, hidden),
            nn.ReLU(),
            nn.Dropout(dropout if hidden_dropout is None else hidden_dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return self.net(features)


class TextHead(nn.Module):
    """Cosine classifier initialised from the zero-shot class embeddings.

    logits = scale * normalize(features) @ weight.T (+ bias), with `weight` starting as the normalised
    class embeddings, so before training the head *is* the zero-shot classifier. `trainable=False` keeps
    it fixed (zero-shot); `trainable=True` fine-tunes it (the "text" head of FLYP/WiSE-FT/LP-FT).
    `bias` is a sigmoid model's (SigLIP's) learnt logit bias: with it the logits are the model's own
    image-text logits, whose sigmoid is its match probability. A softmax over classes is unchanged by it.
    """

    def __init__(
        self,
        class_embeddings: torch.Tensor,
        logit_scale: float,
        trainable: bool,
        dropout: float = 0.0,
        bias: float | None = None,
    ):
        super().__init__()
        self.weight = nn.Parameter(class_embeddings.detach().clone(), requires_grad=trainable)
        self.register_buffer("scale", torch.tensor(float(logit_scale)))
        self.register_buffer("logit_bias", None if bias is None else torch.tensor(float(bias)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        features = F.normalize(self.dropout(features), dim=-1)
        weight = self.weight if weight is None else weight
        logits = self.scale * features @ weight.to(features.dtype).T
        return logits if self.logit_bias is None else logits + self.logit_bias


def tokenize_prompts(
    tokenizer: Callable[[list[str]], torch.Tensor], classnames: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """Tokens of every (class, template) prompt, class-major: [C * T, context_length]."""
    prompts = [template.format(name) for name in classnames for template in templates]
    return tokenizer(prompts)
