"""The protocols in the data layer: few-shot (`data.shots`), base-to-new (`data.classes`), eval sets."""

from __future__ import annotations

import pytest
import torch

from clipstudy.config import DataConfig
from clipstudy.data import Split, load_dataset, open_eval_set
from clipstudy.errors import DataError

IMAGE_SIZE = 16
DIGITS = DataConfig(name="digits")
SYNTHETIC = DataConfig(name="synthetic", num_classes=7, samples_per_class=30)


def keys(split: Split) -> list[bytes]:
    return [row.numpy().tobytes() for row in split.images]


def per_class(split: Split, num_classes: int) -> list[int]:
    return torch.bincount(split.labels, minlength=num_classes).tolist()


@pytest.mark.parametrize("shots", [1, 2, 4, 8, 16])
def test_shots_per_class_from_the_train_and_val_pools(shots):
    full = load_dataset(DIGITS, IMAGE_SIZE)
    few = load_dataset(DIGITS.model_copy(update={"shots": shots}), IMAGE_SIZE)
    assert per_class(few.train, 10) == [shots] * 10
    assert per_class(few.val, 10) == [min(shots, 4)] * 10  # CoOp: validation of min(k, 4) per class
    assert set(keys(few.train)) <= set(keys(full.train)) and set(keys(few.val)) <= set(keys(full.val))
    assert torch.equal(few.test.images, full.test.images)  # the test split is never thinned
    assert few.fingerprint != full.fingerprint


def test_shot_seed_decides_the_sample_and_defaults_to_the_split_seed():
    draw = {
        seed: load_dataset(DIGITS.model_copy(update={"shots": 4, "shot_seed": seed}), IMAGE_SIZE) for seed in (0, 1)
    }
    again = load_dataset(DIGITS.model_copy(update={"shots": 4, "shot_seed": 1}), IMAGE_SIZE)
    assert torch.equal(again.train.images, draw[1].train.images) and again.fingerprint == draw[1].fingerprint
    assert set(keys(draw[0].train)) != set(keys(draw[1].train))
    assert set(keys(draw[0].val)) != set(keys(draw[1].val))  # the validation draw follows the same seed
    # same train/val/test split underneath: only the draw moves
    assert torch.equal(draw[0].test.images, draw[1].test.images)
    default = load_dataset(DIGITS.model_copy(update={"shots": 4}), IMAGE_SIZE)  # shot_seed None = split_seed 0
    assert default.fingerprint == draw[0].fingerprint


def test_more_shots_than_the_training_pool_is_a_clear_error():
    with pytest.raises(DataError, match=r"data.shots=500: class 0 \('zero'\) has only \d+ training image"):
        load_dataset(DIGITS.model_copy(update={"shots": 500}), IMAGE_SIZE)


def test_base_classes_are_the_first_half_and_new_classes_the_rest():
    full = load_dataset(SYNTHETIC, IMAGE_SIZE)
    base = load_dataset(SYNTHETIC.model_copy(update={"classes": "base"}), IMAGE_SIZE)
    new = load_dataset(SYNTHETIC.model_copy(update={"classes": "new"}), IMAGE_SIZE)
    assert base.classnames == full.classnames[:4] and new.classnames == full.classnames[4:]
    assert set(base.classnames).isdisjoint(new.classnames)
    for split in ("train", "val", "test"):
        whole, b, n = getattr(full, split), getattr(base, split), getattr(new, split)
        assert set(b.labels.tolist()) == set(range(4)) and set(n.labels.tolist()) == set(range(3))
        assert keys(b) == keys(whole.subset((whole.labels < 4).nonzero().flatten()))
        assert keys(n) == keys(whole.subset((whole.labels >= 4).nonzero().flatten()))
        assert torch.equal(n.labels, whole.labels[whole.labels >= 4] - 4)  # relabelled 0..C_new-1
    # with data.classes: base the bundle carries the new classes' test images for N
    assert new.new_classes is None and full.new_classes is None
    assert base.new_classes.classnames == new.classnames and base.new_classes.templates == new.templates
    assert torch.equal(base.new_classes.test.images, new.test.images)
    assert torch.equal(base.new_classes.test.labels, new.test.labels)


def test_few_shot_base_classes_keep_the_full_dataset_draw():
    few = load_dataset(SYNTHETIC.model_copy(update={"shots": 3}), IMAGE_SIZE)
    few_base = load_dataset(SYNTHETIC.model_copy(update={"shots": 3, "classes": "base"}), IMAGE_SIZE)
    assert per_class(few_base.train, 4) == [3] * 4
    assert keys(few_base.train) == keys(few.train.subset((few.train.labels < 4).nonzero().flatten()))
    assert len(few_base.new_classes.test) == int((few.test.labels >= 4).sum())  # N: all new-class test images


def test_base_to_new_needs_four_classes():
    with pytest.raises(DataError, match=r"synthetic: base-to-new .* at least 4 classes"):
        load_dataset(DataConfig(name="synthetic", num_classes=3, classes="base"), IMAGE_SIZE)


def test_eval_set_is_the_test_split_optionally_capped_per_class():
    whole = open_eval_set(DIGITS, IMAGE_SIZE)
    bundle = load_dataset(DIGITS, IMAGE_SIZE)
    assert whole.name == "digits" and whole.classnames == bundle.classnames and whole.templates == bundle.templates
    assert torch.equal(whole.loaded().test.images, bundle.test.images)
    capped = open_eval_set(DIGITS, IMAGE_SIZE, per_class=5)
    assert per_class(capped.test, 10) == [5] * 10
    assert set(keys(capped.loaded().test)) <= set(keys(bundle.test))
    assert per_class(open_eval_set(DIGITS, IMAGE_SIZE, per_class=10**6).test, 10) == per_class(bundle.test, 10)


def test_eval_set_of_files_decodes_only_when_loaded(tmp_path):
    from PIL import Image

    for label, name in enumerate(("red", "green", "blue", "grey")):
        for i in range(6):
            colour = [60 * i, 40 * label, 200][:3]
            (tmp_path / name).mkdir(exist_ok=True)
            Image.new("RGB", (20 + i, 12), tuple(colour)).save(tmp_path / name / f"{i}.png")
    opened = open_eval_set(DataConfig(name="imagefolder", root=str(tmp_path)), IMAGE_SIZE, per_class=1)
    assert not isinstance(opened.test, Split) and len(opened.test) == 4
    loaded = opened.loaded()
    assert isinstance(loaded.test, Split) and loaded.test.images.shape == (4, 3, IMAGE_SIZE, IMAGE_SIZE)
