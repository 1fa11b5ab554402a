"""The decoded-image store: built once and reused, invalidated by a changed file, built once by concurrent
builders, rebuilt when partial or corrupt, cleaned up on a bad image or a full disk, read without private
memory growing with its size, and decoded exactly as open_clip preprocesses."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import clipstudy.data.decode as decode
from clipstudy.data.store import IMAGES, META, StoreSpec, open_store
from clipstudy.engine.streaming import BatchStream
from clipstudy.errors import DataError


def write_images(folder: Path, count: int, size: tuple[int, int] = (37, 23)) -> list[str]:
    rng = np.random.default_rng(count)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def spec(files, size=16, mode="eval") -> StoreSpec:
    return StoreSpec(files, size, "bicubic", mode, "test")


@pytest.fixture
def counted(monkeypatch):
    """The files decoded, in this process."""
    seen: list[str] = []
    real = decode.decode_image
    monkeypatch.setattr(decode, "decode_image", lambda path, *args: seen.append(path) or real(path, *args))
    return seen


def test_a_store_is_built_once_and_then_opened(tmp_path, counted):
    files = write_images(tmp_path / "images", 10)
    first = open_store(spec(files), tmp_path / "stores")
    assert first.built and len(counted) == 10 and first.images.shape == (10, 3, 16, 16)
    again = open_store(spec(files), tmp_path / "stores")
    assert not again.built and len(counted) == 10 and again.key == first.key
    assert torch.equal(again.images, first.images)
    assert isinstance(again.images.untyped_storage(), torch.UntypedStorage)
    assert sorted(p.name for p in (tmp_path / "stores").iterdir()) == sorted([first.key, f"{first.key}.lock"])


def test_a_changed_file_or_decode_setting_is_another_store(tmp_path):
    files = write_images(tmp_path / "images", 6)
    before = open_store(spec(files), tmp_path / "stores")
    assert spec(files, size=20).key() != before.key and spec(files, mode="train").key() != before.key
    Image.fromarray(np.zeros((23, 37, 3), dtype=np.uint8)).save(files[2])
    os.utime(files[2], ns=(time.time_ns(), time.time_ns() + 10**9))
    after = open_store(spec(files), tmp_path / "stores")
    assert after.built and after.key != before.key
    assert after.images[2].sum() == 0 and torch.equal(after.images[3], before.images[3])


def _open_in_another_process(args) -> bool:
    files, root = args
    return open_store(spec(files), Path(root), progress=False).built


@pytest.mark.slow
def test_concurrent_builders_build_once(tmp_path):
    files = write_images(tmp_path / "images", 200, size=(300, 200))
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        built = pool.map(_open_in_another_process, [(files, str(tmp_path / "stores"))] * 3)
    assert sorted(built) == [False, False, True]


@pytest.mark.parametrize("damage", ["truncated", "no meta", "meta of another build"])
def test_a_partial_or_corrupt_store_is_rebuilt(tmp_path, counted, damage):
    files = write_images(tmp_path / "images", 8)
    store = open_store(spec(files), tmp_path / "stores")
    expected = store.images.clone()
    if damage == "truncated":
        with open(store.folder / IMAGES, "r+b") as handle:
            handle.truncate(100)
    elif damage == "no meta":
        (store.folder / META).unlink()
    else:
        (store.folder / META).write_text('{"key": "other", "complete": true}')
    counted.clear()
    rebuilt = open_store(spec(files), tmp_path / "stores")
    assert rebuilt.built and len(counted) == 8 and torch.equal(rebuilt.images, expected)


def test_a_corrupt_image_is_named_and_leaves_no_store(tmp_path):
    files = write_images(tmp_path / "images", 5)
    Path(files[3]).write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot read image .*0003\.png.*delete or replace"):
        open_store(spec(files), tmp_path / "stores")
    assert [p.name for p in (tmp_path / "stores").iterdir() if not p.name.endswith(".lock")] == []


def test_a_full_disk_names_the_space_needed_and_the_folder(tmp_path, monkeypatch):
    import shutil

    files = write_images(tmp_path / "images", 5)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(DataError, match=r"needs 0\.00 GiB in .*stores and 0\.00 GiB are free.*data\.cache_dir"):
        open_store(spec(files), tmp_path / "stores")
    assert [p.name for p in (tmp_path / "stores").iterdir() if not p.name.endswith(".lock")] == []


def rss_anon_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.mark.slow
def test_reading_a_store_larger_than_the_memory_allowed_keeps_private_memory_flat(tmp_path):
    """A 300 MiB store read in shuffled batches through BatchStream (prefetching) while this process's private
    memory may grow by 72 MiB at most (a quarter of it): the store's pages are page cache (RssFile), not the
    trial's own memory (RssAnon)."""
    files = write_images(tmp_path / "images", 400, size=(20, 12))
    images = open_store(spec(files, size=512), tmp_path / "stores").images
    assert images.numel() >= 300 * 2**20
    limit_mib = 72  # a batch of 8 is 6 MiB: three in flight (two prefetched), and what glibc keeps of freed ones
    baseline, peak, total = rss_anon_mib(), 0.0, 0
    for batch in BatchStream(images, torch.device("cpu"), prefetch=2)(torch.randperm(len(images)).split(8)):
        total += int(batch[:, :, ::64, ::64].sum())  # the gather has read every row; this only looks at it
        peak = max(peak, rss_anon_mib() - baseline)
    assert total > 0 and peak < limit_mib, f"private memory grew by {peak:.0f} MiB reading a 300 MiB store"


def test_eval_decoding_is_open_clips_preprocessing(tmp_path):
    """Shorter side to the size, bicubic, centre crop, RGB: the same pixels as open_clip's eval transform
    (normalised alike), for a wide, a tall and a greyscale image."""
    from open_clip.transform import image_transform

    rng = np.random.default_rng(0)
    paths = []
    for i, shape in enumerate([(23, 37, 3), (41, 19, 3), (30, 30)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        paths.append(str(path))
    stored = open_store(spec(paths, size=16), tmp_path / "stores").images
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    reference = image_transform(16, is_train=False, mean=mean, std=std)
    for path, row in zip(paths, stored, strict=True):
        with Image.open(path) as image:
            expected = reference(image)
        ours = (row.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_sixteen_bit_and_float_images_keep_their_contrast(tmp_path):
    """PIL's RGB conversion would turn a 16-bit PNG white (it clips at 255); it is scaled to 8 bits instead."""
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    Image.fromarray((ramp / 65535).astype(np.float32)).save(tmp_path / "float.tif")
    Image.fromarray((ramp // 257).astype(np.uint8)).save(tmp_path / "eight.png")
    files = [str(tmp_path / name) for name in ("deep.png", "float.tif", "eight.png")]
    deep, floating, eight = open_store(spec(files, size=32), tmp_path / "stores").images
    assert deep.min() == 0 and deep.max() == 255 and torch.equal(deep[0], deep[2])  # greyscale: R = B
    assert (deep.int() - eight.int()).abs().max() <= 1 and (floating.int() - eight.int()).abs().max() <= 1
