"""The decoded-image store: a split's image files decoded once per machine into a memory-mapped uint8 file
`[N, 3, S, S]` under `data.cache_dir/stores/`, shared by every trial and study that reads the same files.

A trial opens the store memory-mapped: no decode, no private copy. Its pages are the kernel's page cache,
shared by all the trials on the node, and counted as file-backed memory (RssFile), not as the trial's own
(RssAnon). Batches read only the rows they index (`engine.streaming.BatchStream`), so a split larger than
RAM trains from disk.

The store's key is what determines its bytes: every file's path, size and modification time (one `stat` a
file, no pixel hashing), the decode size, the resampling, the mode (eval: open_clip's preprocessing exactly;
train: the same at a larger size for random crops) and `DECODE_VERSION`. The key is also the split's
fingerprint (the feature cache's key reads it), so a changed file means another store and other features.

Building happens under an exclusive lock on `<key>.lock`: of the trials that start together, one decodes
(in processes, one per core) while the others wait and then open what it built. It writes into
`<key>.partial-<pid>/` and renames that to `<key>/` only once every image is in and `meta.json` is
written, so a crashed build leaves no store that looks complete; a store whose meta or size does not match
is removed and rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from clipstudy.data.decode import decode_into
from clipstudy.errors import DataError

log = logging.getLogger(__name__)

DECODE_VERSION = 2
"""Bump when decoding changes what a store holds (resampling, crop, colour conversion)."""
Mode = Literal["eval", "train"]
CHUNK = 64
"""Images a decode task writes at once."""
PROCESSES_FROM = 4096
"""Stores of fewer images decode in threads of this process (starting processes would cost more)."""
META = "meta.json"
IMAGES = "images.u8"


@dataclass(frozen=True)
class StoreSpec:
    """What a store holds: these files, decoded at `size` with `interpolation`, in `mode`."""

    files: Sequence[str]
    size: int
    interpolation: str
    mode: Mode
    dataset: str
    """Named in errors."""
    identity: str | None = None
    """What the items' bytes depend on, when it is not their files' stats (a dataset's fingerprint, shard
    stats): then the key hashes it and the item names, with no `stat` per item."""

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), 3, self.size, self.size)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def key(self) -> str:
        """A hash of every file's path, size and mtime and of how it is decoded: O(files) stat calls."""
        digest = hashlib.blake2b(digest_size=12)
        digest.update(json.dumps([DECODE_VERSION, self.size, self.interpolation, self.mode]).encode())
        if self.identity is not None:
            digest.update(f"identity:{self.identity}\n".encode())
            for item in self.files:
                digest.update(f"{item}\n".encode())
            return digest.hexdigest()
        for path in self.files:
            try:
                stat = os.stat(path)
            except OSError as error:
                raise DataError(f"{self.dataset}: cannot read image {path} ({error}); restore or remove it") from None
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class OpenedStore:
    images: torch.Tensor
    """uint8 [N, 3, S, S] over the memory-mapped file (copy-on-write: never written, pages stay shared)."""
    key: str
    folder: Path
    built: bool
    """Whether this call decoded it (False: it was there, or another process built it)."""


def open_store(spec: StoreSpec, root: Path, progress: bool = True) -> OpenedStore:
    """The store of `spec` under `root`, built first if no complete one is there."""
    key = spec.key()
    folder = root / key
    if _complete(folder, spec, key):
        return _opened(folder, spec, key, built=False)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{key}.lock"):
        if _complete(folder, spec, key):  # another process built it while this one waited
            return _opened(folder, spec, key, built=False)
        if folder.exists():
            log.warning("store %s is incomplete or corrupt; rebuilding it", folder)
            shutil.rmtree(folder)
        _build(spec, folder, key, progress)
    return _opened(folder, spec, key, built=True)


def _opened(folder: Path, spec: StoreSpec, key: str, built: bool) -> OpenedStore:
    start = time.perf_counter()
    array = np.memmap(folder / IMAGES, dtype=np.uint8, mode="c", shape=spec.shape) if spec.files else None
    images = torch.from_numpy(array) if array is not None else torch.empty(spec.shape, dtype=torch.uint8)
    if not built:
        say(
            f"{spec.dataset}: opened the decoded-image store {folder} ({len(spec.files)} images, "
            f"{spec.nbytes / 2**20:.0f} MiB) in {time.perf_counter() - start:.2f} s"
        )
    return OpenedStore(images, key, folder, built)


def say(message: str) -> None:
    """A line for the console and the trial's log (a Ray trial's stderr is its log)."""
    log.info(message)
    print(f"clipstudy: {message}", file=sys.stderr, flush=True)


def _complete(folder: Path, spec: StoreSpec, key: str) -> bool:
    """A finished build of this key: its meta matches and the image file has every byte."""
    try:
        meta = json.loads((folder / META).read_text())
        size = (folder / IMAGES).stat().st_size if spec.files else 0
    except (OSError, ValueError):
        return False
    expected = {"key": key, "shape": list(spec.shape), "version": DECODE_VERSION, "complete": True}
    return all(meta.get(k) == v for k, v in expected.items()) and size == spec.nbytes


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(spec: StoreSpec, folder: Path, key: str, progress: bool) -> None:
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        _check_space(spec, partial)
        start = time.perf_counter()
        if spec.files:
            np.memmap(partial / IMAGES, dtype=np.uint8, mode="w+", shape=spec.shape).flush()
            _decode_all(spec, partial / IMAGES, progress)
        elapsed = time.perf_counter() - start
        meta = {
            "key": key,
            "shape": list(spec.shape),
            "version": DECODE_VERSION,
            "dataset": spec.dataset,
            "mode": spec.mode,
            "interpolation": spec.interpolation,
            "seconds": round(elapsed, 2),
            "complete": True,
        }
        (partial / META).write_text(json.dumps(meta))
        os.replace(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    rate = len(spec.files) / elapsed if elapsed else 0.0
    say(
        f"{spec.dataset}: built the decoded-image store {folder} ({len(spec.files)} images, "
        f"{spec.nbytes / 2**20:.0f} MiB) in {elapsed:.1f} s ({rate:,.0f} img/s)"
    )


def _check_space(spec: StoreSpec, folder: Path) -> None:
    free = shutil.disk_usage(folder).free
    if free < spec.nbytes:
        raise DataError(
            f"{spec.dataset}: the decoded-image store needs {spec.nbytes / 2**30:.2f} GiB in {folder.parent} and "
            f"{free / 2**30:.2f} GiB are free; free space there, or set data.cache_dir to a folder on a larger disk"
        )


def _decode_all(spec: StoreSpec, path: Path, progress: bool) -> None:
    """Decode every file into the memory-mapped file, a chunk a task, reporting progress as chunks finish."""
    chunks = [(start, spec.files[start : start + CHUNK]) for start in range(0, len(spec.files), CHUNK)]
    with _executor(len(spec.files)) as pool, _progress(spec, progress) as advance:
        futures = [
            pool.submit(
                decode_into,
                str(path),
                spec.shape,
                start,
                list(files),
                spec.size,
                spec.interpolation,
                spec.mode,
                spec.dataset,
            )
            for start, files in chunks
        ]
        try:
            for future in as_completed(futures):
                advance(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _executor(count: int) -> Executor:
    workers = max(1, len(os.sched_getaffinity(0)))
    if count < PROCESSES_FROM or workers == 1:
        return ThreadPoolExecutor(max_workers=min(8, workers * 2))
    # spawn, not fork: the parent may hold CUDA and threads; the workers import only PIL and NumPy work
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


@contextmanager
def _progress(spec: StoreSpec, show: bool):
    """A progress bar (images, img/s, ETA, store size) where the console is a terminal; else nothing."""
    if not (show and sys.stderr.isatty()):
        yield lambda done: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} img/s"),
        TimeRemainingColumn(),
    )
    title = f"decoding {spec.dataset} ({spec.mode}, {spec.size} px, {spec.nbytes / 2**30:.2f} GiB store)"
    start = time.perf_counter()
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(title, total=len(spec.files), rate="-")

        def advance(done: int) -> None:
            bar.advance(task, done)
            finished = bar.tasks[0].completed
            bar.update(task, rate=f"{finished / max(time.perf_counter() - start, 1e-9):,.0f}")

        yield advance
