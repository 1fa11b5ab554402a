"""Seeded, stratified hold-out splits.

The split depends only on the labels, the fraction and `data.split_seed` (never on `train.seed`), so
every trial of a study sees the same train/val/test images.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from clipstudy.errors import DataError

log = logging.getLogger(__name__)


def stratified_holdout(
    labels: torch.Tensor, fraction: float, seed: int, what: str = "held-out"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices 0..N-1 into (rest, held), `held` being about `fraction` of N, both sorted.

    Stratified by label when every class has at least 2 samples; the held-out share is then raised
    to one sample per class if `fraction` alone would leave a class out. Otherwise (a class with a
    single sample) the split is a plain seeded shuffle.
    """
    y = labels.cpu().numpy()
    n = len(y)
    counts = np.bincount(y) if n else np.zeros(0, dtype=int)
    present = int((counts > 0).sum())
    n_held = math.ceil(fraction * n)
    stratify = None
    if n and counts[counts > 0].min() >= 2 and n - max(n_held, present) >= present:
        n_held = max(n_held, present)
        stratify = y
    elif n:
        log.warning("%s split of %d samples is not stratified: some class has too few samples", what, n)
    if n_held < 1 or n - n_held < 1:
        raise DataError(
            f"cannot hold out a {what} share of {fraction} from {n} samples; add images or change the "
            f"fraction (data.val_fraction / data.test_fraction)"
        )
    rest, held = train_test_split(np.arange(n), test_size=n_held, random_state=seed, shuffle=True, stratify=stratify)
    return torch.from_numpy(np.sort(rest)), torch.from_numpy(np.sort(held))
