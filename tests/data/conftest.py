"""Miniature file layouts of the benchmark datasets, as torchvision (or the user) would leave them on disk.

Each maker writes a few tiny, all-different images per class in the dataset's own layout, with its
split and label files, and returns the DataConfig that reads it offline. ImageNet's needs its 1000
class folders, so it is written once per session (loading never writes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipstudy.config import DataConfig

_counter = iter(range(10**9))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Decoded-image stores go under `data.cache_dir` (default ~/.cache/clipstudy/features): a test home."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


def write_image(path: Path, size: tuple[int, int] = (10, 8)) -> None:
    """Random pixels (so every image differs), in the format the suffix names."""
    rng = np.random.default_rng(next(_counter))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=95)


def _flowers102(root: Path, monkeypatch) -> dict:
    from scipy.io import savemat
    from torchvision.datasets import flowers102

    monkeypatch.setattr(flowers102, "check_integrity", lambda *args, **kwargs: True)  # md5 of the real files
    base = root / "flowers-102"
    per_class = {"trnid": 2, "valid": 1, "tstid": 1}
    labels, ids, image_id = [], {key: [] for key in per_class}, 0
    for label in range(1, 103):
        for key, count in per_class.items():
            for _ in range(count):
                image_id += 1
                write_image(base / "jpg" / f"image_{image_id:05d}.jpg")
                labels.append(label)
                ids[key].append(image_id)
    savemat(base / "imagelabels.mat", {"labels": np.array(labels)})
    savemat(base / "setid.mat", {key: np.array(value) for key, value in ids.items()})
    return {}


AIRCRAFT = ("707-320", "A310", "F-16A/B")


def _fgvc_aircraft(root: Path, monkeypatch) -> dict:
    data = root / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(AIRCRAFT) + "\n")
    image_id = 1000000
    for split, count in {"train": 3, "val": 2, "test": 2}.items():
        lines = []
        for variant in AIRCRAFT:
            for _ in range(count):
                image_id += 1
                write_image(data / "images" / f"{image_id}.jpg")
                lines.append(f"{image_id} {variant}")
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
    return {}


def _dtd(root: Path, monkeypatch) -> dict:
    data = root / "dtd" / "dtd"
    (data / "labels").mkdir(parents=True)
    for split, count in {"train": 3, "val": 2, "test": 2}.items():
        lines = []
        for texture in ("banded", "polka-dotted", "zigzagged"):
            for i in range(count):
                name = f"{texture}_{split}_{i:04d}.jpg"
                write_image(data / "images" / texture / name)
                lines.append(f"{texture}/{name}")
        (data / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
    return {}


def _food101(root: Path, monkeypatch) -> dict:
    base = root / "food-101"
    (base / "meta").mkdir(parents=True)
    for split, count in {"train": 6, "test": 2}.items():
        meta = {}
        for dish in ("apple_pie", "baby_back_ribs", "pho"):
            meta[dish] = [f"{dish}/{split}{i}" for i in range(count)]
            for name in meta[dish]:
                write_image(base / "images" / f"{name}.jpg")
        (base / "meta" / f"{split}.json").write_text(json.dumps(meta))
    return {}


def _oxford_pets(root: Path, monkeypatch) -> dict:
    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    for split, count in {"trainval": 6, "test": 2}.items():
        lines = []
        for label, (breed, species) in enumerate((("Abyssinian", 1), ("american_bulldog", 2), ("pug", 2)), 1):
            for i in range(count):
                image_id = f"{breed}_{split}{i}"
                write_image(base / "images" / f"{image_id}.jpg")
                lines.append(f"{image_id} {label} {species} 1")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return {}


def _eurosat(root: Path, monkeypatch) -> dict:
    for folder in ("AnnualCrop", "HerbaceousVegetation", "SeaLake"):
        for i in range(8):
            write_image(root / "eurosat" / "2750" / folder / f"{folder}_{i}.jpg")
    return {}


def _caltech101(root: Path, monkeypatch) -> dict:
    for folder in ("BACKGROUND_Google", "Faces", "Faces_easy", "Leopards", "accordion"):
        for i in range(1, 9):
            write_image(root / "caltech101" / "101_ObjectCategories" / folder / f"image_{i:04d}.jpg")
    return {}


SUN_CLASSES = ("/a/abbey", "/a/apartment_building/outdoor", "/b/bakery/shop")


def _sun397(root: Path, monkeypatch) -> dict:
    base = root / "SUN397"
    base.mkdir(parents=True)
    (base / "ClassName.txt").write_text("\n".join(SUN_CLASSES) + "\n")
    for name in SUN_CLASSES:
        for i in range(8):
            write_image(base / name.lstrip("/") / f"sun_{name.replace('/', '')}{i}.jpg")
    return {}


CARS = ("AM General Hummer SUV 2000", "Acura RL Sedan 2012", "smart fortwo Convertible 2012")


def _stanford_cars(root: Path, monkeypatch) -> dict:
    from scipy.io import savemat

    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(CARS, dtype=object)})
    for split, annotation_file, count in (
        ("train", base / "devkit" / "cars_train_annos.mat", 6),
        ("test", base / "cars_test_annos_withlabels.mat", 2),
    ):
        records = np.zeros(len(CARS) * count, dtype=[("fname", "O"), ("class", "O")])
        for i in range(len(records)):
            records[i] = (f"{i:05d}.jpg", i % len(CARS) + 1)
            write_image(base / f"cars_{split}" / f"{i:05d}.jpg")
        savemat(annotation_file, {"annotations": records})
    return {}


UCF_FOLDERS = ("ApplyEyeMakeup", "Basketball", "YoYo")


def _ucf101(root: Path, monkeypatch) -> dict:
    """Middle frames named like the videos: groups 1-7 are split 1's test set."""
    for folder in UCF_FOLDERS:
        for group in (2, 5, 8, 9, 10, 11, 12, 13):
            write_image(root / "ucf101" / folder / f"v_{folder}_g{group:02d}_c01.jpg")
    return {}


def imagenet_wnids() -> list[str]:
    return [f"n{10_000_000 + i:08d}" for i in range(1000)]


@pytest.fixture(scope="session")
def imagenet_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imagenet_fake")
    for wnid in imagenet_wnids():
        for i in range(2):
            write_image(root / "imagenet" / "train" / wnid / f"{wnid}_{i}.JPEG", (4, 4))
        write_image(root / "imagenet" / "val" / wnid / f"ILSVRC2012_val_{wnid}.JPEG", (4, 4))
    return root


MAKERS: dict[str, Callable[[Path, pytest.MonkeyPatch], dict]] = {
    "flowers102": _flowers102,
    "fgvc_aircraft": _fgvc_aircraft,
    "dtd": _dtd,
    "food101": _food101,
    "oxford_pets": _oxford_pets,
    "eurosat": _eurosat,
    "caltech101": _caltech101,
    "sun397": _sun397,
    "stanford_cars": _stanford_cars,
    "ucf101": _ucf101,
}


@pytest.fixture
def fake_dataset(tmp_path, monkeypatch, request) -> Callable[[str], DataConfig]:
    """`fake_dataset(name)`: write `name`'s miniature layout and return the DataConfig that reads it offline."""

    def make(name: str) -> DataConfig:
        if name not in BENCHMARKS:
            pytest.fail(f"dataset '{name}' has no offline test config: add a maker to {__file__}")
        if name == "imagenet":
            root = request.getfixturevalue("imagenet_root")
        else:
            root = tmp_path / f"fake_{name}"
            MAKERS[name](root, monkeypatch)
        return DataConfig(name=name, root=str(root), download=False)

    return make


BENCHMARKS = (*MAKERS, "imagenet")


def make_shards(folder: Path, shards: int = 2, per_shard: int = 9, classes: int = 3, prefix: str = "train") -> str:
    """WebDataset shards `prefix-000.tar`.. of JPEG samples (`<key>.jpg`, `<key>.cls`); returns the brace pattern."""
    import io
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(prefix))
    for shard in range(shards):
        with tarfile.open(folder / f"{prefix}-{shard:03d}.tar", "w") as tar:
            for i in range(per_shard):
                key = f"{shard:03d}{i:05d}"
                image = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)).save(image, "JPEG")
                for name, data in ((f"{key}.jpg", image.getvalue()), (f"{key}.cls", str(i % classes).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return str(folder / f"{prefix}-{{000..{shards - 1:03d}}}.tar")


def make_hf_dataset(folder: Path, per_class: int = 8, classes: tuple[str, ...] = ("red_car", "blue_bus", "cat")) -> str:
    """A Hugging Face DatasetDict (train, test) with an Image and a ClassLabel column, saved to disk."""
    import datasets

    rng = np.random.default_rng(1)

    def split(count: int) -> datasets.Dataset:
        labels = [i % len(classes) for i in range(count)]
        images = [Image.fromarray(rng.integers(0, 256, (18 + i % 5, 26, 3), dtype=np.uint8)) for i in range(count)]
        features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(classes))})
        return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)

    datasets.DatasetDict(train=split(per_class * len(classes)), test=split(len(classes) * 2)).save_to_disk(folder)
    return str(folder)
