"""WiSE-FT weight interpolation (Wortsman et al. 2022; as CLIP-CITE applies it to both towers, its Eq. 7)."""

from __future__ import annotations

import torch


def interpolate(
    origin: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """θ = (1-α)·origin + α·finetuned for every weight of `origin`, on the fine-tuned weights' device.

    `torch.lerp` computes from the nearer end (origin + α·Δ below α=0.5, finetuned - (1-α)·Δ above), so
    α=0 returns the origin and α=1 the fine-tuned weights bit for bit.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    missing = sorted(set(origin) - set(finetuned))
    if missing:
        raise KeyError(f"no fine-tuned weights for {missing[:3]}")
    out = {}
    for name, start in origin.items():
        end = finetuned[name]
        out[name] = torch.lerp(start.to(end.device, end.dtype), end, alpha)
    return out
