"""Every registered dataset, loaded offline: the DataBundle contract, seeded stratified splits, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from clipstudy.config import DataConfig
from clipstudy.data import DATASETS, DataBundle, dataset_origin, load_dataset
from clipstudy.data.templates import UCF_TEMPLATES as CLIP_UCF_TEMPLATES
from clipstudy.errors import DataError
from tests.data.conftest import make_hf_dataset, make_shards

IMAGE_SIZE = 24
CLASSES = ("red_thing", "green_thing", "blue_thing")


def write_png(path, size, colour, seed):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.integers(-40, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def make_imagefolder(root, per_class=8, classes=CLASSES):
    """Class folders of PNGs of varying sizes and aspect ratios, every image different."""
    for label, name in enumerate(classes):
        colour = [255 * (label == k) for k in range(3)]
        for i in range(per_class):
            size = (30 + 3 * i, 20 + 5 * (i % 3))
            write_png(root / name / f"img_{i}.png", size, colour, seed=100 * label + i)
    return root


def make_fake_cifar(root, monkeypatch, name):
    """A tiny file set in torchvision's pickle layout; the md5 check is patched out."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder, files, key, label_key = (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)],
            "label_names",
            "labels",
        )
        meta, classes = "batches.meta", [f"class_{i}" for i in range(10)]
        test_file = "test_batch"
    else:
        folder, files, key, label_key = "cifar-100-python", ["train"], "fine_label_names", "fine_labels"
        meta, classes = "meta", [f"class_{i}" for i in range(100)]
        test_file = "test"
    base = root / folder
    base.mkdir(parents=True)
    for file_name, per_class in [*((f, 2) for f in files), (test_file, 1)]:
        labels = np.repeat(np.arange(len(classes)), per_class).tolist()
        data = rng.integers(0, 256, (len(labels), 3 * 32 * 32), dtype=np.uint8)
        (base / file_name).write_bytes(pickle.dumps({"data": data, label_key: labels}))
    (base / meta).write_bytes(pickle.dumps({key: classes}))


@pytest.fixture(params=DATASETS.names())
def offline_config(request, tmp_path, monkeypatch, fake_dataset) -> DataConfig:
    """A DataConfig that loads the dataset without a network; a new dataset must be added here or, for a
    file layout, to the makers in tests/data/conftest.py."""
    name = request.param
    if name in ("digits", "shapes"):
        return DataConfig(name=name)
    if name == "synthetic":
        return DataConfig(name=name, num_classes=5, samples_per_class=12, image_size=16)
    if name == "imagefolder":
        return DataConfig(name=name, root=str(make_imagefolder(tmp_path / "images")))
    if name in ("cifar10", "cifar100"):
        make_fake_cifar(tmp_path, monkeypatch, name)
        return DataConfig(name=name, root=str(tmp_path), download=False)
    if name == "webdataset":
        return DataConfig(name=name, root=make_shards(tmp_path / "shards"))
    if name == "hf":
        return DataConfig(name=name, root=make_hf_dataset(tmp_path / "hf"))
    return fake_dataset(name)


def image_keys(images: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in images}


def test_bundle_contract(offline_config):
    bundle = load_dataset(offline_config, IMAGE_SIZE)
    assert isinstance(bundle, DataBundle) and bundle.name == offline_config.name
    assert bundle.num_classes == len(bundle.classnames) >= 2
    assert all("_" not in name for name in bundle.classnames)
    assert len(bundle.raw_classnames) == bundle.num_classes  # as stored, for `prompts.classnames: raw`
    assert bundle.templates and all("{}" in t for t in bundle.templates)
    assert isinstance(bundle.fingerprint, str) and len(bundle.fingerprint) >= 8
    for split in (bundle.train, bundle.val, bundle.test):
        assert len(split) > 0
        assert split.images.dtype == torch.uint8 and split.images.is_contiguous()
        assert split.images.ndim == 4 and split.images.shape[1] == 3 and split.images.device.type == "cpu"
        assert split.labels.dtype == torch.int64 and split.labels.shape == (len(split),)
        assert split.labels.min() >= 0 and split.labels.max() < bundle.num_classes
    # every class is in train and (the splits being stratified) in validation
    assert set(bundle.train.labels.tolist()) == set(range(bundle.num_classes))
    assert set(bundle.val.labels.tolist()) == set(range(bundle.num_classes))
    # no image is in two splits (every fixture image is unique)
    train, val, test = (image_keys(s.images) for s in (bundle.train, bundle.val, bundle.test))
    assert not (train & val) and not (train & test) and not (val & test)


def test_split_is_seeded_by_split_seed_only(offline_config):
    first = load_dataset(offline_config, IMAGE_SIZE)
    torch.manual_seed(1234)  # the global (training) seed must not matter
    again = load_dataset(offline_config, IMAGE_SIZE)
    assert again.fingerprint == first.fingerprint
    assert torch.equal(again.val.images, first.val.images) and torch.equal(again.val.labels, first.val.labels)
    other = load_dataset(offline_config.model_copy(update={"split_seed": 1}), IMAGE_SIZE)
    source = DATASETS.get(offline_config.name)(offline_config, IMAGE_SIZE)
    if source.val is not None and source.test is not None:  # official splits only: nothing is held out
        assert other.fingerprint == first.fingerprint
        return
    assert other.fingerprint != first.fingerprint
    assert not torch.equal(other.val.images, first.val.images)


def test_fractions_are_respected():
    bundle = load_dataset(DataConfig(name="digits", val_fraction=0.25, test_fraction=0.2), IMAGE_SIZE)
    total = len(bundle.train) + len(bundle.val) + len(bundle.test)
    assert total == 1797
    assert len(bundle.test) == pytest.approx(0.2 * total, abs=1)
    assert len(bundle.val) == pytest.approx(0.25 * (total - len(bundle.test)), abs=1)


def test_digits_values_and_names():
    bundle = load_dataset(DataConfig(name="digits"), IMAGE_SIZE)
    images = bundle.train.images
    assert images.shape[-2:] == (8, 8) and images.max() == 255 and images.min() == 0
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    assert bundle.classnames[0] == "zero" and bundle.classnames[9] == "nine"


def test_synthetic_is_deterministic_and_sized():
    cfg = DataConfig(name="synthetic", num_classes=3, samples_per_class=5)
    first, second = load_dataset(cfg, IMAGE_SIZE), load_dataset(cfg, IMAGE_SIZE)
    assert first.train.images.shape[-2:] == (32, 32)
    assert torch.equal(first.train.images, second.train.images)
    assert first.classnames == ["class 0", "class 1", "class 2"]
    assert len(first.train) + len(first.val) + len(first.test) == 15


def test_synthetic_is_learnable():
    """A nearest-class-mean classifier on raw pixels already beats chance by far."""
    bundle = load_dataset(DataConfig(name="synthetic", num_classes=6, samples_per_class=40), IMAGE_SIZE)
    train = bundle.train.images.float().flatten(1)
    means = torch.stack([train[bundle.train.labels == c].mean(0) for c in range(6)])
    predicted = torch.cdist(bundle.test.images.float().flatten(1), means).argmin(1)
    assert (predicted == bundle.test.labels).float().mean() > 0.6


def test_cifar_arrays_become_chw(tmp_path, monkeypatch):
    make_fake_cifar(tmp_path, monkeypatch, "cifar10")
    bundle = load_dataset(DataConfig(name="cifar10", root=str(tmp_path), download=False), IMAGE_SIZE)
    assert bundle.train.images.shape[1:] == (3, 32, 32)  # stays 32 px whatever the model size
    assert len(bundle.test) == 10 and len(bundle.train) + len(bundle.val) == 100
    assert bundle.classnames[0] == "class 0" and len(bundle.templates) == 18
    assert bundle.raw_classnames[0] == "class_0"  # torchvision's `classes`, as stored


def test_imagefolder_decodes_to_size_and_names_classes(tmp_path):
    root = make_imagefolder(tmp_path / "images")
    bundle = load_dataset(DataConfig(name="imagefolder", root=str(root)), IMAGE_SIZE)
    assert bundle.train.images.shape[1:] == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert bundle.classnames == ["blue thing", "green thing", "red thing"]
    assert bundle.raw_classnames == ["blue_thing", "green_thing", "red_thing"]
    sized = load_dataset(DataConfig(name="imagefolder", root=str(root), image_size=16), IMAGE_SIZE)
    assert sized.train.images.shape[-2:] == (16, 16) and sized.fingerprint != bundle.fingerprint
    # the colour survives decoding: class 'red thing' (label 2) is red
    red = bundle.train.images[bundle.train.labels == 2].float().mean((0, 2, 3))
    assert red[0] > 150 and red[1] < 80 and red[2] < 80


def test_imagefolder_split_layout(tmp_path):
    root = tmp_path / "images"
    make_imagefolder(root / "train", per_class=6)
    make_imagefolder(root / "test", per_class=2)
    bundle = load_dataset(DataConfig(name="imagefolder", root=str(root)), IMAGE_SIZE)
    assert len(bundle.test) == 6  # the given test folder, not a held-out share
    assert len(bundle.train) + len(bundle.val) == 18
    make_imagefolder(root / "val", per_class=1, classes=CLASSES[:2])  # val may lack a class
    bundle = load_dataset(DataConfig(name="imagefolder", root=str(root)), IMAGE_SIZE)
    assert len(bundle.val) == 2 and len(bundle.train) == 18


# ---- errors: each names the problem and the fix


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DataError, match="unknown dataset 'cifar1000'") as error:
        load_dataset(DataConfig.model_construct(name="cifar1000"), IMAGE_SIZE)  # configs reject it; a raw one
    assert "did you mean 'cifar100'" in str(error.value)
    assert all(name in str(error.value) for name in DATASETS.names())


@pytest.mark.parametrize(("name", "folder"), [("cifar100", "cifar-100-python"), ("cifar10", "cifar-10-batches-py")])
def test_missing_cifar_without_download(tmp_path, name, folder):
    with pytest.raises(DataError) as error:
        load_dataset(DataConfig(name=name, root=str(tmp_path), download=False), IMAGE_SIZE)
    message = str(error.value)
    assert str(tmp_path / folder) in message and "data.download: true" in message and f"'{folder}'" in message


def test_imagefolder_missing_root(tmp_path):
    with pytest.raises(DataError, match="not a folder") as error:
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path / "nowhere")), IMAGE_SIZE)
    assert str(tmp_path / "nowhere") in str(error.value)


def test_imagefolder_needs_two_classes(tmp_path):
    make_imagefolder(tmp_path, classes=("only",))
    with pytest.raises(DataError, match="at least 2") as error:
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path)), IMAGE_SIZE)
    assert str(tmp_path) in str(error.value)


def test_imagefolder_empty_class_folder(tmp_path):
    make_imagefolder(tmp_path)
    (tmp_path / "empty_one").mkdir()
    (tmp_path / "empty_one" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="holds no images") as error:
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path)), IMAGE_SIZE)
    assert str(tmp_path / "empty_one") in str(error.value)


def test_imagefolder_unreadable_image(tmp_path):
    make_imagefolder(tmp_path)
    broken = tmp_path / "red_thing" / "broken.png"
    broken.write_bytes(b"this is not a png")
    with pytest.raises(DataError, match="cannot read image") as error:
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path)), IMAGE_SIZE)
    assert str(broken) in str(error.value)


def test_imagefolder_test_class_not_in_train(tmp_path):
    make_imagefolder(tmp_path / "train")
    make_imagefolder(tmp_path / "test", classes=("red_thing", "purple_thing"))
    with pytest.raises(DataError, match="purple_thing"):
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path)), IMAGE_SIZE)


# ---- the benchmark datasets: names, templates and splits as the literature uses them


def test_every_dataset_says_where_its_files_come_from():
    origins = {name: dataset_origin(name) for name in DATASETS.names()}
    assert set(origins.values()) <= {"builtin", "download", "local"}
    assert origins["digits"] == origins["synthetic"] == "builtin"
    assert origins["flowers102"] == origins["cifar100"] == "download"
    assert origins["stanford_cars"] == origins["ucf101"] == origins["imagenet"] == "local"


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if dataset_origin(n) != "builtin"])
def test_missing_files_name_the_dataset_the_folder_and_the_fix(tmp_path, name):
    """Offline and without the files, every dataset that reads files fails with what to do, not a traceback."""
    with pytest.raises(DataError) as error:
        load_dataset(DataConfig(name=name, root=str(tmp_path), download=False), IMAGE_SIZE)
    message = str(error.value)
    assert message.startswith(f"{name}:") and str(tmp_path) in message
    if dataset_origin(name) == "download":
        assert "data.download: true" in message
    else:
        assert any(hint in message for hint in ("lay", "put", "point data.root")), message


EUROSAT_TEMPLATE = "a centered satellite photo of {}."


@pytest.mark.parametrize(
    ("name", "classnames", "template", "sizes"),
    [
        ("fgvc_aircraft", ["707-320", "A310", "F-16A/B"], "a photo of a {}, a type of aircraft.", (9, 6, 6)),
        ("dtd", ["banded", "polka-dotted", "zigzagged"], "a photo of a {} texture.", (9, 6, 6)),
        ("food101", ["apple pie", "baby back ribs", "pho"], "a photo of {}, a type of food.", (None, None, 6)),
        ("oxford_pets", ["Abyssinian", "American Bulldog", "Pug"], "a photo of a {}, a type of pet.", (None, None, 6)),
        ("eurosat", ["annual crop land", "brushland or shrubland", "lake or sea"], EUROSAT_TEMPLATE, None),
        ("caltech101", ["face", "leopard", "accordion"], "a photo of a {}.", None),
        ("sun397", ["abbey", "apartment building outdoor", "bakery shop"], "a photo of a {}.", None),
        (
            "stanford_cars",
            ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "smart fortwo Convertible 2012"],
            "a photo of a {}.",
            (None, None, 6),
        ),
        ("ucf101", ["Apply Eye Makeup", "Basketball", "Yo Yo"], "a photo of a person {}.", (None, None, 6)),
    ],
)
def test_benchmark_names_templates_and_official_splits(fake_dataset, name, classnames, template, sizes):
    """CLIP's class names and first template; the dataset's own splits where it has them (train, val, test;
    None = held out by split_seed)."""
    bundle = load_dataset(fake_dataset(name), IMAGE_SIZE)
    assert bundle.classnames == classnames and bundle.templates[0] == template
    assert bundle.train.images.shape[1:] == (3, IMAGE_SIZE, IMAGE_SIZE)
    for size, split in zip(sizes or (None,) * 3, (bundle.train, bundle.val, bundle.test), strict=True):
        if size is not None:
            assert len(split) == size


def test_flowers102_uses_its_official_splits_and_torchvision_names(fake_dataset):
    bundle = load_dataset(fake_dataset("flowers102"), IMAGE_SIZE)
    assert bundle.num_classes == 102 and bundle.classnames[0] == "pink primrose"
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (204, 102, 102)
    assert bundle.templates == ["a photo of a {}, a type of flower."]


def test_ucf101_frames_of_one_video_group_stay_on_one_side(fake_dataset):
    """Split 1 of UCF101: groups 1-7 are test, so no group is in both train/val and test."""
    cfg = fake_dataset("ucf101")
    source = DATASETS.get("ucf101")(cfg, IMAGE_SIZE)

    def groups(files: list[str]) -> set[int]:
        return {int(path.rsplit("_g", 1)[1][:2]) for path in files}

    assert groups(source.test.files) == {2, 5}
    assert groups(source.train.files) == {8, 9, 10, 11, 12, 13}
    assert len(CLIP_UCF_TEMPLATES) == 48 and CLIP_UCF_TEMPLATES[8] == "a photo of a person using {}."


def test_imagenet_uses_open_clip_names_and_val_as_test(fake_dataset):
    bundle = load_dataset(fake_dataset("imagenet"), IMAGE_SIZE)
    assert bundle.num_classes == 1000 and bundle.classnames[:2] == ["tench", "goldfish"]
    assert len(bundle.templates) == 80 and bundle.templates[0] == "a photo of a {}."
    assert len(bundle.test) == 1000 and len(bundle.train) + len(bundle.val) == 2000


def test_imagenet_needs_its_1000_class_folders(tmp_path):
    for wnid in ("n01440764", "n01443537"):
        for part in ("train", "val"):
            write_png(tmp_path / "imagenet" / part / wnid / "a.JPEG", (8, 8), (0, 0, 0), 0)
    with pytest.raises(DataError, match="2 class folders, not the 1000") as error:
        load_dataset(DataConfig(name="imagenet", root=str(tmp_path)), IMAGE_SIZE)
    assert "image-net.org" in str(error.value)


def test_image_files_are_resized_with_the_models_interpolation(tmp_path):
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    root = make_imagefolder(tmp_path / "images", per_class=6)
    cfg = DataConfig(name="imagefolder", root=str(root))
    bicubic, bilinear = (load_dataset(cfg, IMAGE_SIZE, mode) for mode in ("bicubic", "bilinear"))
    assert bicubic.fingerprint != bilinear.fingerprint
    first = sorted(root.glob("*/*.png"))[0]
    with Image.open(first) as image:
        resized = TF.resize(image, IMAGE_SIZE, interpolation=InterpolationMode.BILINEAR)
        expected = np.asarray(TF.center_crop(resized, IMAGE_SIZE).convert("RGB"))
    decoded = {
        row.permute(1, 2, 0).numpy().tobytes()
        for split in (bilinear.train, bilinear.val, bilinear.test)
        for row in split.images
    }
    assert expected.tobytes() in decoded


def test_a_split_no_one_trains_on_is_left_undecoded(tmp_path, monkeypatch):
    """Zero-shot (decode_train=False) reads no train file; with the store, a second load decodes nothing."""
    import clipstudy.data.decode as decode

    root = make_imagefolder(tmp_path / "images", per_class=10)
    decoded: list[str] = []
    real = decode.decode_image
    monkeypatch.setattr(decode, "decode_image", lambda path, *args: decoded.append(path) or real(path, *args))
    in_memory = DataConfig(name="imagefolder", root=str(root), store=False)
    full = load_dataset(in_memory, IMAGE_SIZE)
    assert len(decoded) == len(full.train) + len(full.val) + len(full.test)
    decoded.clear()
    evaluated = load_dataset(in_memory, IMAGE_SIZE, decode_train=False)
    assert len(evaluated.train) == 0 and evaluated.train.images.shape[1:] == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert len(decoded) == len(full.val) + len(full.test)
    assert torch.equal(evaluated.test.images, full.test.images) and torch.equal(evaluated.val.labels, full.val.labels)
    stored = DataConfig(name="imagefolder", root=str(root), cache_dir=str(tmp_path / "cache"))
    decoded.clear()
    first = load_dataset(stored, IMAGE_SIZE, decode_train=False)
    assert len(decoded) == len(full.val) + len(full.test)
    decoded.clear()
    again = load_dataset(stored, IMAGE_SIZE)
    assert len(decoded) == len(full.train)  # val and test come from their stores
    assert torch.equal(again.test.images, full.test.images) and torch.equal(first.val.images, full.val.images)
