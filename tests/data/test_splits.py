"""stratified_holdout: disjoint, complete, stratified, seeded; few-shot draws; the base/new class halves."""

from __future__ import annotations

import math

import pytest
import torch

from clipstudy.data.splits import base_new_classes, few_shot_indices, stratified_holdout
from clipstudy.errors import DataError


def test_disjoint_complete_and_stratified():
    labels = torch.arange(5).repeat_interleave(20)
    rest, held = stratified_holdout(labels, 0.2, seed=0)
    assert len(held) == 20 and len(rest) == 80
    assert set(rest.tolist()).isdisjoint(held.tolist())
    assert sorted(rest.tolist() + held.tolist()) == list(range(100))
    assert torch.bincount(labels[held]).tolist() == [4] * 5


def test_same_seed_same_split_other_seed_other_split():
    labels = torch.arange(4).repeat(25)
    first = stratified_holdout(labels, 0.3, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(first, stratified_holdout(labels, 0.3, seed=7), strict=True))
    assert not torch.equal(first[1], stratified_holdout(labels, 0.3, seed=8)[1])


def test_small_fraction_still_covers_every_class():
    labels = torch.arange(10).repeat_interleave(3)  # 30 samples: 10% would hold out 3 of 10 classes
    rest, held = stratified_holdout(labels, 0.1, seed=0)
    assert set(labels[held].tolist()) == set(range(10)) and set(labels[rest].tolist()) == set(range(10))


def test_singleton_class_falls_back_to_a_plain_split():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2])
    rest, held = stratified_holdout(labels, 0.3, seed=0)
    assert len(rest) + len(held) == 9 and set(rest.tolist()).isdisjoint(held.tolist())


def test_too_few_samples():
    with pytest.raises(DataError, match="cannot hold out"):
        stratified_holdout(torch.tensor([0]), 0.5, seed=0)


# ---- few-shot draws

NAMES = ["cat", "dog", "fox", "owl"]
POOLS = torch.tensor([0] * 20 + [1] * 7 + [2] * 30 + [3] * 16)[
    torch.randperm(73, generator=torch.Generator().manual_seed(0))
]


@pytest.mark.parametrize("shots", [1, 2, 4, 7])
def test_few_shot_gives_exactly_k_per_class(shots):
    chosen = few_shot_indices(POOLS, shots, seed=3, classnames=NAMES)
    assert torch.bincount(POOLS[chosen], minlength=4).tolist() == [shots] * 4
    assert len(set(chosen.tolist())) == len(chosen) == 4 * shots  # no image twice
    assert torch.equal(chosen, chosen.sort().values) and chosen.max() < len(POOLS)


def test_few_shot_same_seed_same_indices_other_seed_other_indices():
    first = few_shot_indices(POOLS, 4, seed=1, classnames=NAMES)
    torch.manual_seed(99)  # the global (training) RNG plays no part
    assert torch.equal(first, few_shot_indices(POOLS, 4, seed=1, classnames=NAMES))
    assert not torch.equal(first, few_shot_indices(POOLS, 4, seed=2, classnames=NAMES))


def test_few_shot_draw_of_a_class_ignores_the_other_classes():
    """Dropping classes (as base-to-new does) leaves the draw of the remaining ones unchanged."""
    full = few_shot_indices(POOLS, 4, seed=5, classnames=NAMES)
    keep = (POOLS < 2).nonzero().flatten()
    partial = few_shot_indices(POOLS[keep], 4, seed=5, classnames=NAMES[:2])
    assert torch.equal(keep[partial], full[POOLS[full] < 2])


def test_few_shot_more_shots_than_a_class_has():
    with pytest.raises(DataError, match=r"data.shots=8: class 1 \('dog'\) has only 7 training image") as error:
        few_shot_indices(POOLS, 8, seed=0, classnames=NAMES)
    assert "lower data.shots" in str(error.value)
    lenient = few_shot_indices(POOLS, 8, seed=0, classnames=NAMES, strict=False)
    assert torch.bincount(POOLS[lenient], minlength=4).tolist() == [8, 7, 8, 8]


# ---- base-to-new


@pytest.mark.parametrize("num_classes", [4, 5, 10, 37, 47, 101, 102, 1000])
def test_base_and_new_classes_are_disjoint_halves_covering_all(num_classes):
    base, new = base_new_classes(num_classes)
    assert set(base).isdisjoint(new) and sorted(base + new) == list(range(num_classes))
    assert base == list(range(math.ceil(num_classes / 2)))  # the first half of the labels, as CoOp
    assert all(b < n for b in base for n in new)


def test_base_to_new_needs_four_classes():
    with pytest.raises(DataError, match="at least 4 classes"):
        base_new_classes(3, "tiny")
