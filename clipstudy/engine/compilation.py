"""`train.compile`: torch.compile of the towers, a transformer block at a time (regional compilation).

Compiling each block in place (`nn.Module.compile`) rather than the whole model keeps what the rest of the
engine relies on: the weights keep their names (checkpoints, LoRA state, WiSE-FT), peft's adapters and the
split attention stay ordinary modules, and the code around the blocks (the text head's prompt encoding,
token masking, a teacher) runs eagerly. Every block of a tower runs the same code, so dynamo compiles it once
per shape and mode and all the blocks share it (their weights are graph inputs), which keeps compilation
to tens of seconds for a 12-block tower. A backbone without transformer blocks (a ResNet) is compiled whole.
"""

from __future__ import annotations

import torch
from torch import nn

BLOCK_LISTS = ("resblocks", "blocks")
"""Names of the block containers: open_clip's `transformer.resblocks`, timm's `trunk.blocks`."""
RECOMPILE_LIMIT = 64
"""Dynamo's per-function cache size: the vision and text blocks, in train and eval mode, at the train, eval
and last-batch shapes each need an entry of the one shared block code."""


def transformer_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The blocks of every transformer block list under `backbone`, outermost lists only."""
    blocks: list[nn.Module] = []
    seen: list[str] = []
    for name, module in backbone.named_modules():
        inside = any(name.startswith(f"{outer}.") for outer in seen)
        if not inside and name.rsplit(".", 1)[-1] in BLOCK_LISTS and isinstance(module, nn.ModuleList | nn.Sequential):
            seen.append(name)
            blocks.extend(module)
    return blocks


def compile_towers(backbone: nn.Module) -> int:
    """Compile, in place, every transformer block of the backbone's towers (or the backbone whole when it has
    none); returns the number of blocks compiled (0: compiled whole)."""
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, RECOMPILE_LIMIT)
    blocks = transformer_blocks(backbone)
    for block in blocks:
        block.compile()
    if not blocks:
        backbone.compile()
    return len(blocks)
