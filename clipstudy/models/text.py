"""Encoding class prompts cheaply: exact truncation of causal text towers, and the prompts a step encodes.

CLIP's text tower is causal and pools one token (the EOT token, picked by `argmax` over the token ids):
the pooled feature depends only on the tokens up to it. Encoding a batch of prompts cut to its longest
EOT position (the positional embedding and causal mask sliced to match) therefore gives the very same
features as the 77-token encoding, for a fraction of the compute. Towers that are not causal, or that
pool a token whose position depends on the length (`last`, SigLIP's), or are not open_clip's own
(Hugging Face text towers), keep the full length.

`ClassPrompts` holds every (class, template) prompt and says which of them a training step encodes
(`prompts.train_templates`); evaluation encodes them all. It keeps a copy of its tokens on the host, from
which the cut length is read: reading it from tokens on a GPU would make the host wait for the GPU at every
step of a method whose text tower trains (found on the CPU by tests/engine/test_host_reads.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

TrainTemplates = Literal["sample", "first", "all"]


@dataclass(frozen=True)
class CausalText:
    """Where a causal open_clip text tower keeps what depends on the sequence length."""

    prefix: str
    """'' when the tower's pieces sit on the CLIP model itself (open_clip's `CLIP`), 'text.' for a
    `TextTransformer` (open_clip's `CustomTextCLIP`)."""
    owner: nn.Module
    pool_type: str
    eos_id: int | None


_CAUSAL: weakref.WeakKeyDictionary[nn.Module, CausalText | None] = weakref.WeakKeyDictionary()
"""`causal_text` per model: checking the mask reads it, which on a GPU waits for the device; it never changes."""


def causal_text(clip: nn.Module) -> CausalText | None:
    """The model's text tower if truncating its prompts is exact: open_clip's own, with a causal mask and
    no appended class token (CoCa's); None otherwise (SigLIP's bidirectional tower, Hugging Face towers)."""
    if clip not in _CAUSAL:
        _CAUSAL[clip] = _find_causal_text(clip)
    return _CAUSAL[clip]


def _find_causal_text(clip: nn.Module) -> CausalText | None:
    from open_clip.transformer import TextTransformer  # open_clip loads with a model, not with this module

    text = getattr(clip, "text", None)
    if isinstance(text, TextTransformer):
        if text.cls_emb is not None:
            return None
        found = CausalText("text.", text, text.pool_type, text.eos_id)
    elif text is None and hasattr(clip, "text_pool_type"):
        found = CausalText("", clip, clip.text_pool_type, getattr(clip, "text_eos_id", None))
    else:
        return None
    mask = getattr(found.owner, "attn_mask", None)
    positions = getattr(found.owner, "positional_embedding", None)
    if not isinstance(mask, torch.Tensor) or not isinstance(positions, torch.Tensor) or not _is_causal(mask):
        return None
    return found


def _is_causal(mask: torch.Tensor) -> bool:
    """True if no position attends to a later one (every entry above the diagonal masked)."""
    if mask.dim() != 2 or mask.shape[0] != mask.shape[1]:
        return False
    blocked = mask if mask.dtype == torch.bool else torch.isneginf(mask)
    return bool(blocked.triu(1).sum() == mask.shape[0] * (mask.shape[0] - 1) // 2)


def pooled_length(tower: CausalText, tokens: torch.Tensor) -> int:
    """1 + the last position the tower pools in any row of `tokens` (open_clip's own pooling, applied to
    the positions): the length the prompts can be cut to. `last` pooling gives the full length."""
    from open_clip.transformer import text_global_pool

    positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens).unsqueeze(-1)
    pooled = text_global_pool(positions, tokens, tower.pool_type, eos_token_id=tower.eos_id)
    return int(pooled.max()) + 1


class _EncodeText(nn.Module):
    """`clip.encode_text` as a forward, so that `functional_call` can run it with sliced tensors."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, tokens: torch.Tensor, normalize: bool) -> torch.Tensor:
        return self.clip.encode_text(tokens, normalize=normalize)


def encode_prompts(
    clip: nn.Module, tokens: torch.Tensor, normalize: bool = False, host_tokens: torch.Tensor | None = None
) -> torch.Tensor:
    """`clip.encode_text(tokens)`, with the tokens cut to the longest pooled position where that is exact.

    The cut model sees the first `length` rows of its positional embedding and the top-left
    `length x length` of its causal mask, swapped in for this call only (`torch.func.functional_call`):
    gradients reach the original parameters, and nothing of the model changes. `host_tokens`, the same
    tokens on the host, give the length without reading `tokens` on their device.
    """
    tower = causal_text(clip)
    lengths_from = tokens if host_tokens is None else host_tokens
    length = tokens.shape[1] if tower is None or not len(tokens) else pooled_length(tower, lengths_from)
    if length >= tokens.shape[1]:
        return clip.encode_text(tokens, normalize=normalize)
    owner, name = tower.owner, f"clip.{tower.prefix}"
    sliced = {
        f"{name}positional_embedding": owner.positional_embedding[:length],
        f"{name}attn_mask": owner.attn_mask[:length, :length],
    }
    return functional_call(_EncodeText(clip), sliced, (tokens[:, :length], normalize), tie_weights=False)


class ClassPrompts(nn.Module):
    """The tokens of every (class, template) prompt, and the ones a training step encodes.

    `train_templates` (`prompts.train_templates`): `all` encodes every template on every step (CLIP's
    ensemble, at C x T prompts a step), `first` the first template of each class, `sample` one template
    per class drawn anew on every step. Evaluation (`training=False`) always encodes them all.

    The draws come from a generator seeded with `seed` (train.seed) and, each time the module enters
    training mode, with torch's current seed (`torch.initial_seed()`, which the trainer sets from
    train.seed and the epoch): an epoch draws the same templates whether or not the trial was resumed.
    """

    def __init__(self, tokens: torch.Tensor, num_classes: int, train_templates: TrainTemplates = "all", seed: int = 0):
        super().__init__()
        if tokens.dim() != 2 or len(tokens) % num_classes:
            raise ValueError(f"tokens must be [num_classes * templates, length]; got {tuple(tokens.shape)}")
        self.register_buffer("tokens", tokens.view(num_classes, -1, tokens.shape[-1]), persistent=False)
        self.host_tokens = self.tokens.detach().cpu().clone()
        """The same tokens, kept on the host when the module moves to a device: the cut lengths come from them."""
        self.train_templates = train_templates
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.drawn: torch.Tensor | None = None
        """The template of each class [C] the last training encoding used; None when it used them all."""

    @property
    def num_classes(self) -> int:
        return self.tokens.shape[0]

    @property
    def num_templates(self) -> int:
        return self.tokens.shape[1]

    def all_tokens(self) -> torch.Tensor:
        """[C * T, length], class-major."""
        return self.tokens.flatten(0, 1)

    def _all_prompts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(every prompt's tokens on the module's device, the same on the host), class-major."""
        return self.all_tokens(), self.host_tokens.flatten(0, 1)

    def step_tokens(self) -> torch.Tensor:
        """The prompts a training step encodes ([C, length] for `first`/`sample`), recording the draw."""
        return self._step_prompts()[0]

    def _step_prompts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(the step's tokens on the module's device, the same on the host), recording the draw."""
        if self.train_templates == "all" or self.num_templates == 1:
            self.drawn = None
            return self._all_prompts()
        if self.train_templates == "first":
            self.drawn = torch.zeros(self.num_classes, dtype=torch.long)
        else:
            self.drawn = torch.randint(self.num_templates, (self.num_classes,), generator=self.generator)
        rows = torch.arange(self.num_classes)
        device = self.tokens.device
        return self.tokens[rows.to(device), self.drawn.to(device)], self.host_tokens[rows, self.drawn]

    def embeddings(self, clip: nn.Module, training: bool) -> torch.Tensor:
        """[C, D] class embeddings through `clip`'s text tower: the step's prompts, or all of them."""
        tokens, host = self._step_prompts() if training else self._all_prompts()
        return class_embeddings(clip, tokens, self.num_classes, host_tokens=host)

    def pool(self, prompt_embeddings: torch.Tensor, training: bool) -> torch.Tensor:
        """[C, D] class embeddings from per-prompt ones [C, T, D] (another model's, e.g. a frozen teacher's),
        over the same templates as the last training encoding (`training`) or all of them."""
        embeddings = F.normalize(prompt_embeddings.float(), dim=-1)
        if training and self.drawn is not None:
            rows = torch.arange(self.num_classes, device=embeddings.device)
            embeddings = embeddings[rows, self.drawn.to(embeddings.device)].unsqueeze(1)
        return F.normalize(embeddings.mean(dim=1), dim=-1)

    def train(self, mode: bool = True) -> ClassPrompts:
        if mode:
            self.generator.manual_seed((self.seed * 1_000_003 + torch.initial_seed()) % 2**63)
        return super().train(mode)


Encoder = nn.Module | Callable[[torch.Tensor], torch.Tensor]
"""A CLIP model (its prompts go through `encode_prompts`, cut where exact) or any function of the tokens."""


def encode_in_chunks(
    encoder: Encoder, tokens: torch.Tensor, chunk: int = 512, host_tokens: torch.Tensor | None = None
) -> torch.Tensor:
    """[N, D] text features of N prompts, `chunk` prompts at a time (each chunk cut to its own longest, read from
    `host_tokens` where given: see `encode_prompts`)."""
    host = tokens.cpu() if host_tokens is None else host_tokens  # one copy for all chunks (none on a CPU)

    def encode(start: int) -> torch.Tensor:
        part = tokens[start : start + chunk]
        if not isinstance(encoder, nn.Module):
            return encoder(part)
        return encode_prompts(encoder, part, host_tokens=host[start : start + chunk])

    return torch.cat([encode(start) for start in range(0, len(tokens), chunk)])


def class_embeddings(
    encoder: Encoder,
    tokens: torch.Tensor,
    num_classes: int,
    chunk: int = 512,
    host_tokens: torch.Tensor | None = None,
) -> torch.Tensor:
    """CLIP's zero-shot weights [C, D] from class-major prompt tokens [C * T, length]: normalise each
    prompt embedding, average per class, normalise again."""
    embeddings = encode_in_chunks(encoder, tokens, chunk, host_tokens)
    embeddings = F.normalize(embeddings.float(), dim=-1).view(num_classes, -1, embeddings.shape[-1])
    return F.normalize(embeddings.mean(dim=1), dim=-1)
