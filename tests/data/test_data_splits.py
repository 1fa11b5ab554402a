"""stratified_holdout: disjoint, complete, stratified, seeded."""

from __future__ import annotations

import pytest
import torch

from clipstudy.data.splits import stratified_holdout
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
