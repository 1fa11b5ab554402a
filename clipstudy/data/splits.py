"""Seeded index selections: stratified hold-out splits, few-shot draws, the base/new class halves.

The split depends only on the labels, the fraction and `data.split_seed` (never on `train.seed`), so
every trial of a study sees the same train/val/test images; the few-shot draw depends only on its
own seed (`data.shot_seed`), so repeating a study over shot seeds varies the sample and nothing else.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

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


def few_shot_indices(
    labels: torch.Tensor, shots: int, seed: int, classnames: Sequence[str], strict: bool = True, what: str = "training"
) -> torch.Tensor:
    """`shots` indices of every class (sorted), drawn without replacement.

    Class c's draw depends only on (seed, c) and its own pool, so the same seed gives the same images
    whichever other classes are present (a base-class subset keeps the full-dataset draw). A class
    with fewer than `shots` images is an error when `strict`; otherwise all its images are kept.
    """
    y = labels.cpu().numpy()
    chosen = []
    for label, name in enumerate(classnames):
        pool = np.flatnonzero(y == label)
        if len(pool) < shots and strict:
            raise DataError(
                f"data.shots={shots}: class {label} ('{name}') has only {len(pool)} {what} image(s); lower "
                "data.shots, or use a dataset (or data.val_fraction / data.test_fraction) that leaves it more"
            )
        rng = np.random.default_rng([seed % 2**32, label])
        chosen.append(rng.choice(pool, size=min(shots, len(pool)), replace=False))
    return torch.from_numpy(np.sort(np.concatenate(chosen)).astype(np.int64))


def base_new_classes(num_classes: int, dataset: str = "dataset") -> tuple[list[int], list[int]]:
    """Base-to-new split of the label indices (CoOp's `subsample_classes`): base = the first
    ceil(C/2) labels in the dataset's own label order, new = the rest."""
    if num_classes < 4:
        raise DataError(
            f"{dataset}: base-to-new (data.classes: base/new) needs at least 4 classes, so that both halves "
            f"have 2; it has {num_classes}"
        )
    half = math.ceil(num_classes / 2)
    return list(range(half)), list(range(half, num_classes))
