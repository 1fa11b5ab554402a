"""WebDataset shards and Hugging Face datasets on disk: read into the decoded-image store like files, named
in errors, and trainable."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from clipstudy.config import DataConfig
from clipstudy.data import load_dataset
from clipstudy.data.decode import decode_image
from clipstudy.data.webdataset import expand_shards
from clipstudy.engine import Trainer
from clipstudy.errors import DataError
from tests.data.conftest import make_hf_dataset, make_shards


def test_brace_patterns_expand_as_webdataset_writes_them():
    assert expand_shards("s/train-{000..002}.tar") == ["s/train-000.tar", "s/train-001.tar", "s/train-002.tar"]
    assert expand_shards("a{1..2}-{08..09}.tar") == ["a1-08.tar", "a1-09.tar", "a2-08.tar", "a2-09.tar"]
    assert expand_shards("one.tar") == ["one.tar"]


def test_shards_load_with_their_labels_and_pixels(tmp_path):
    pattern = make_shards(tmp_path / "shards", shards=2, per_shard=9)
    val = make_shards(tmp_path / "shards", shards=1, per_shard=6, prefix="val")
    (tmp_path / "shards" / "classnames.txt").write_text("apple\nbanana\ncherry\n")
    cfg = DataConfig(name="webdataset", root=pattern, val_root=val, cache_dir=str(tmp_path / "cache"))
    bundle = load_dataset(cfg, 16)
    assert bundle.classnames == ["apple", "banana", "cherry"]
    assert len(bundle.val) == 6 and len(bundle.train) + len(bundle.test) == 18
    assert bundle.train.key is not None and bundle.val.key is not None  # read through the store
    with tarfile.open(tmp_path / "shards" / "val-000.tar") as tar:
        (tmp_path / "member.jpg").write_bytes(tar.extractfile("00000002.jpg").read())
    expected = decode_image(tmp_path / "member.jpg", 16, "test").transpose(2, 0, 1)
    assert any(np.array_equal(row.numpy(), expected) for row in bundle.val.images)
    assert sorted(bundle.val.labels.tolist()) == [0, 0, 1, 1, 2, 2]


def test_a_sample_without_a_label_is_named(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    with tarfile.open(folder / "train-000.tar", "w") as tar:
        data = io.BytesIO()
        Image.new("RGB", (8, 8)).save(data, "PNG")
        info = tarfile.TarInfo("sample7.png")
        info.size = len(data.getvalue())
        tar.addfile(info, io.BytesIO(data.getvalue()))
    with pytest.raises(DataError, match=r"sample /sample7 in .*train-000\.tar has no a label \(\.cls\).*label_key"):
        load_dataset(DataConfig(name="webdataset", root=str(folder / "train-000.tar")), 16)


def test_a_corrupt_shard_member_is_named_with_its_shard(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    with tarfile.open(folder / "train-000.tar", "w") as tar:
        for i in range(6):
            for name, data in ((f"{i}.jpg", b"not a jpeg"), (f"{i}.cls", str(i % 2).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    cfg = DataConfig(name="webdataset", root=str(folder / "train-000.tar"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"cannot read image \d\.jpg in .*train-000\.tar"):
        load_dataset(cfg, 16)


def test_a_saved_hugging_face_dataset_loads_with_its_class_names(tmp_path):
    root = make_hf_dataset(tmp_path / "hf")
    bundle = load_dataset(DataConfig(name="hf", root=root, cache_dir=str(tmp_path / "cache")), 16)
    assert bundle.classnames == ["red car", "blue bus", "cat"] and bundle.raw_classnames == [
        "red_car",
        "blue_bus",
        "cat",
    ]
    assert len(bundle.test) == 6 and len(bundle.train) + len(bundle.val) == 24 and bundle.test.key is not None
    import datasets

    test = datasets.load_from_disk(root)["test"]
    (tmp_path / "row0.png").write_bytes(test.cast_column("image", datasets.Image(decode=False))[0]["image"]["bytes"])
    expected = decode_image(tmp_path / "row0.png", 16, "test").transpose(2, 0, 1)
    assert np.array_equal(bundle.test.images[0].numpy(), expected)
    assert bundle.test.labels.tolist() == test["label"]


def test_a_missing_column_names_the_setting(tmp_path):
    root = make_hf_dataset(tmp_path / "hf")
    with pytest.raises(DataError, match=r"no column 'img' \(columns: image, label\); set data.image_key"):
        load_dataset(DataConfig(name="hf", root=root, image_key="img"), 16)


@pytest.mark.parametrize("source", ["webdataset", "hf"])
def test_a_trial_trains_on_the_source(source, tmp_path, tiny_config):
    root = make_shards(tmp_path / "shards", 2, 12) if source == "webdataset" else make_hf_dataset(tmp_path / "hf")
    cfg = tiny_config("lora", data__name=source, data__root=root, augment__crop_scale=[0.5, 1.0], train__epochs=2)
    trainer = Trainer(cfg)
    assert trainer.data.train.images.shape[-1] == 37  # stored at 32 x 8/7 for the random crops
    result = trainer.fit()
    assert len(result.history) == 3 and all(torch.isfinite(torch.tensor(h["val/loss"])) for h in result.history)
    assert result.metrics["test/acc"] >= 0
