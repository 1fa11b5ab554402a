"""Datasets torchvision knows: CIFAR-10/100 as whole uint8 arrays, and the few-shot benchmark sets.

The benchmark sets (Flowers102, FGVCAircraft, DTD, Food101, OxfordIIITPet, EuroSAT, Caltech101,
SUN397, and StanfordCars, which torchvision can no longer download) are read through torchvision's
own classes, which find the files, check them, parse the official splits and download where they can;
clipstudy takes their file lists and labels and decodes only the images a trial uses. Those lists sit
in attributes torchvision keeps private (`_image_files`, `_labels`, ...): tests/data build each
dataset's file layout in miniature, so a torchvision that renames them fails there, not in a study.

Splits: the dataset's official train/val/test where it has them (DTD: partition 1; OxfordIIITPet:
trainval/test); EuroSAT and SUN397 ship none and Caltech101 none in torchvision, so their test and
validation sets are held out by `data.split_seed` like any other dataset's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clipstudy.config import DataConfig
from clipstudy.data.base import FileSplit, Source, Split, register_dataset
from clipstudy.data.templates import (
    AIRCRAFT_TEMPLATES,
    CALTECH_TEMPLATES,
    CARS_TEMPLATES,
    CIFAR_TEMPLATES,
    DTD_TEMPLATES,
    EUROSAT_TEMPLATES,
    FLOWERS_TEMPLATES,
    FOOD_TEMPLATES,
    PETS_TEMPLATES,
    SUN_TEMPLATES,
    humanize,
)
from clipstudy.errors import DataError

_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}

EUROSAT_NAMES = {
    "AnnualCrop": "annual crop land",
    "Forest": "forest",
    "HerbaceousVegetation": "brushland or shrubland",
    "Highway": "highway or road",
    "Industrial": "industrial buildings or commercial buildings",
    "Pasture": "pasture land",
    "PermanentCrop": "permanent crop land",
    "Residential": "residential buildings or homes or apartments",
    "River": "river",
    "SeaLake": "lake or sea",
}
"""EuroSAT's folder names -> CLIP's class names (data/prompts.md)."""

CALTECH_IGNORED = ("Faces_easy",)
CALTECH_NAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}
"""CoOp's Caltech101 (the benchmark's 100 classes): torchvision already drops BACKGROUND_Google;
Faces_easy duplicates Faces, and four folder names become their singular class names."""


def open_torchvision(cfg: DataConfig, name: str, folder: str, make: Callable[[bool], Any], fix: str | None = None):
    """`make(download)`, with torchvision's 'not found' and download failures turned into DataErrors.

    `fix` says how to obtain the files; the default is torchvision's download or placing its folder.
    """
    root = os.path.expanduser(cfg.root)
    where = os.path.join(root, folder)
    fix = fix or (
        f"set data.download: true to fetch it, or place torchvision's '{folder}' folder in data.root ({root})"
    )
    try:
        return make(cfg.download)
    except RuntimeError as error:  # torchvision: "Dataset not found (or corrupted)"
        raise DataError(f"{name}: no usable dataset at {where} ({error}); {fix}") from None
    except OSError as error:
        if cfg.download:
            raise DataError(
                f"{name}: download into {root} failed ({error}); check the network, or place torchvision's "
                f"'{folder}' folder there and set data.download: false"
            ) from None
        raise DataError(f"{name}: incomplete dataset at {where} ({error}); {fix}") from None


def _cifar(cfg: DataConfig, name: str) -> Source:
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    root = os.path.expanduser(cfg.root)
    train, test = (
        open_torchvision(cfg, name, _FOLDERS[name], lambda download, t=is_train: cls(root, train=t, download=download))
        for is_train in (True, False)
    )
    return Source(
        classnames=[humanize(c) for c in train.classes],
        templates=list(CIFAR_TEMPLATES),
        train=_split(train.data, train.targets),
        test=_split(test.data, test.targets),
        raw_classnames=list(train.classes),
    )


def _split(data: np.ndarray, targets: list[int]) -> Split:
    """[N, H, W, 3] uint8 HWC array -> CHW tensor."""
    images = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).contiguous()
    return Split(images, torch.as_tensor(targets, dtype=torch.int64))


@register_dataset("cifar10", origin="download")
def load_cifar10(cfg: DataConfig, image_size: int) -> Source:
    return _cifar(cfg, "cifar10")


@register_dataset("cifar100", origin="download")
def load_cifar100(cfg: DataConfig, image_size: int) -> Source:
    return _cifar(cfg, "cifar100")


def _files(cfg: DataConfig, image_size: int, name: str, files: Sequence[Any], targets: Sequence[int]) -> FileSplit:
    labels = torch.as_tensor(targets, dtype=torch.int64)
    return FileSplit([str(f) for f in files], labels, cfg.image_size or image_size, name)


def _unzip(samples: Sequence[tuple[Any, int]]) -> tuple[list[Any], list[int]]:
    """[(path, label), ...] -> ([path, ...], [label, ...])."""
    return [path for path, _ in samples], [label for _, label in samples]


def _parts(cfg: DataConfig, name: str, folder: str, cls: type, parts: Sequence[str], **kwargs: Any) -> list[Any]:
    """One torchvision dataset per split name (the first call downloads, when allowed)."""
    root = os.path.expanduser(cfg.root)
    return [
        open_torchvision(cfg, name, folder, lambda download, p=p: cls(root, split=p, download=download, **kwargs))
        for p in parts
    ]


def _same_classes(name: str, classes: list[list[str]]) -> list[str]:
    """Datasets that derive the class list per split must agree, or the labels would not match."""
    if any(c != classes[0] for c in classes[1:]):
        raise DataError(f"{name}: its splits list different classes; the dataset files are incomplete, re-fetch them")
    return list(classes[0])


@register_dataset("flowers102", origin="download")
def load_flowers102(cfg: DataConfig, image_size: int) -> Source:
    from torchvision.datasets import Flowers102

    train, val, test = _parts(cfg, "flowers102", "flowers-102", Flowers102, ("train", "val", "test"))
    splits = [_files(cfg, image_size, "flowers102", d._image_files, d._labels) for d in (train, val, test)]
    return Source(list(Flowers102.classes), list(FLOWERS_TEMPLATES), *splits)


@register_dataset("fgvc_aircraft", origin="download")
def load_fgvc_aircraft(cfg: DataConfig, image_size: int) -> Source:
    from torchvision.datasets import FGVCAircraft

    parts = _parts(cfg, "fgvc_aircraft", "fgvc-aircraft-2013b", FGVCAircraft, ("train", "val", "test"))
    splits = [_files(cfg, image_size, "fgvc_aircraft", d._image_files, d._labels) for d in parts]
    return Source(list(parts[0].classes), list(AIRCRAFT_TEMPLATES), *splits)


@register_dataset("dtd", origin="download")
def load_dtd(cfg: DataConfig, image_size: int) -> Source:
    from torchvision.datasets import DTD

    parts = _parts(cfg, "dtd", "dtd", DTD, ("train", "val", "test"), partition=1)
    classes = _same_classes("dtd", [d.classes for d in parts])
    splits = [_files(cfg, image_size, "dtd", d._image_files, d._labels) for d in parts]
    return Source([humanize(c) for c in classes], list(DTD_TEMPLATES), *splits, raw_classnames=list(classes))


@register_dataset("food101", origin="download")
def load_food101(cfg: DataConfig, image_size: int) -> Source:
    from torchvision.datasets import Food101

    parts = _parts(cfg, "food101", "food-101", Food101, ("train", "test"))
    classes = _same_classes("food101", [d.classes for d in parts])
    train, test = (_files(cfg, image_size, "food101", d._image_files, d._labels) for d in parts)
    return Source([humanize(c) for c in classes], list(FOOD_TEMPLATES), train, test=test, raw_classnames=list(classes))


@register_dataset("oxford_pets", origin="download")
def load_oxford_pets(cfg: DataConfig, image_size: int) -> Source:
    from torchvision.datasets import OxfordIIITPet

    parts = _parts(cfg, "oxford_pets", "oxford-iiit-pet", OxfordIIITPet, ("trainval", "test"))
    classes = _same_classes("oxford_pets", [d.classes for d in parts])
    train, test = (_files(cfg, image_size, "oxford_pets", d._images, d._labels) for d in parts)
    return Source(classes, list(PETS_TEMPLATES), train, test=test)


@register_dataset("eurosat", origin="download")
def load_eurosat(cfg: DataConfig, image_size: int) -> Source:
    from torchvision.datasets import EuroSAT

    root = os.path.expanduser(cfg.root)
    data = open_torchvision(cfg, "eurosat", "eurosat", lambda download: EuroSAT(root, download=download))
    files, labels = _unzip(data.samples)
    names = [EUROSAT_NAMES.get(c, humanize(c)) for c in data.classes]
    split = _files(cfg, image_size, "eurosat", files, labels)
    return Source(names, list(EUROSAT_TEMPLATES), split, raw_classnames=list(data.classes))


@register_dataset("caltech101", origin="download")
def load_caltech101(cfg: DataConfig, image_size: int) -> Source:
    from torchvision.datasets import Caltech101

    root = os.path.expanduser(cfg.root)
    data = open_torchvision(cfg, "caltech101", "caltech101", lambda download: Caltech101(root, download=download))
    kept = [c for c in data.categories if c not in CALTECH_IGNORED]
    relabel = {data.categories.index(c): label for label, c in enumerate(kept)}
    folder = Path(data.root) / "101_ObjectCategories"
    files, labels = [], []
    for label, index in zip(data.y, data.index, strict=True):
        if label in relabel:
            files.append(folder / data.categories[label] / f"image_{index:04d}.jpg")
            labels.append(relabel[label])
    names = [humanize(CALTECH_NAMES.get(c, c)) for c in kept]
    split = _files(cfg, image_size, "caltech101", files, labels)
    return Source(names, list(CALTECH_TEMPLATES), split, raw_classnames=kept)


@register_dataset("sun397", origin="download")
def load_sun397(cfg: DataConfig, image_size: int) -> Source:
    from torchvision.datasets import SUN397

    root = os.path.expanduser(cfg.root)
    data = open_torchvision(cfg, "sun397", "SUN397", lambda download: SUN397(root, download=download))
    names = [humanize(c.replace("/", " ")) for c in data.classes]  # 'apartment_building/outdoor'
    split = _files(cfg, image_size, "sun397", data._image_files, data._labels)
    return Source(names, list(SUN_TEMPLATES), split, raw_classnames=list(data.classes))


@register_dataset("stanford_cars", origin="local")
def load_stanford_cars(cfg: DataConfig, image_size: int) -> Source:
    from torchvision.datasets import StanfordCars

    root = os.path.expanduser(cfg.root)
    folder = os.path.join(root, "stanford_cars")
    fix = (
        "Stanford's download is gone, so torchvision cannot fetch it: get the Stanford Cars images and "
        "annotations elsewhere (e.g. a Kaggle mirror of 'stanford-cars-dataset' with cars_test_annos_withlabels.mat) "
        f"and lay them out as torchvision's StanfordCars expects: {folder}/devkit/cars_meta.mat, "
        f"{folder}/devkit/cars_train_annos.mat, {folder}/cars_train/, {folder}/cars_test/, "
        f"{folder}/cars_test_annos_withlabels.mat"
    )
    parts = [
        open_torchvision(cfg, "stanford_cars", "stanford_cars", lambda _, p=p: StanfordCars(root, split=p), fix)
        for p in ("train", "test")
    ]
    train, test = (_files(cfg, image_size, "stanford_cars", *_unzip(d._samples)) for d in parts)
    return Source(list(parts[0].classes), list(CARS_TEMPLATES), train, test=test)
