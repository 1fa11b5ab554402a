"""Batches of a split, by index, wherever the split lives: on the device, or streamed from host memory.

A split that fits the GPU is held there and indexed in place. One that does not (ImageNet's 1.28M images
at 224 px are 190 GiB) stays in host memory, and each batch must be gathered and copied to the GPU. Done
inside the step, the gather (tens of MB of random rows) and a copy from pageable memory, which the host
waits for, leave the GPU idle. `BatchStream` gathers up to `prefetch` batches ahead in background threads
(ATen's copy releases the GIL) into pinned memory and copies each to the GPU on a side stream, so the
copy of batch k runs while the GPU still computes batch k - 1; the compute stream waits on the copy's
event, never the host.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import torch

Index = torch.Tensor | slice
"""Rows of a split: an index tensor (a shuffled batch) or a slice (evaluation, in order)."""


def _on(index: Index, device: torch.device) -> Index:
    """`index` on `device`; a copy to a GPU is non-blocking (a blocking one waits for the whole queue)."""
    return index if isinstance(index, slice) else index.to(device, non_blocking=True)


def _count(index: Index, total: int) -> int:
    return len(range(*index.indices(total))) if isinstance(index, slice) else len(index)


class BatchStream:
    """`inputs[index]` on `device` for each index (tensor or slice), in order.

    `inputs` is a tensor on the device or on the host (a tensor over a memory-mapped file too). Host
    inputs are gathered ahead (into pinned memory and over a side stream for a GPU; on a CPU trial the
    gather of a memory-mapped split's pages overlaps the step too); a split on the GPU is indexed in place.
    """

    def __init__(self, inputs: torch.Tensor, device: torch.device, prefetch: int = 2):
        self.inputs, self.device, self.prefetch = inputs, device, prefetch
        self.to_gpu = device.type == "cuda"

    def __call__(self, indices: Iterable[Index]) -> Iterator[torch.Tensor]:
        if self.inputs.device.type != "cpu":
            yield from self._in_place(indices)
        elif self.prefetch == 0:
            yield from self._synchronous(indices)
        else:
            yield from self._prefetched(indices)

    def _in_place(self, indices: Iterable[Index]) -> Iterator[torch.Tensor]:
        for index in indices:
            yield self.inputs[_on(index, self.inputs.device)].to(self.device, non_blocking=True)

    def _synchronous(self, indices: Iterable[Index]) -> Iterator[torch.Tensor]:
        """The reference: gather from pageable memory and copy in the step (what `prefetch: 0` does)."""
        for index in indices:
            yield self.inputs[_on(index, self.inputs.device)].to(self.device)

    def _buffer(self, index: Index) -> torch.Tensor:
        """New (pinned, for a GPU) memory for the rows of `index`. Allocated here, in the consumer's thread, not
        in the gathering threads: memory freed by one thread and allocated by others piles up in glibc's
        per-thread arenas (measured: private memory growing by a batch's size every few batches). PyTorch's
        caching host allocator reuses a pinned block only once the copies that read it have finished."""
        shape = (_count(index, len(self.inputs)), *self.inputs.shape[1:])
        return torch.empty(shape, dtype=self.inputs.dtype, pin_memory=self.to_gpu)

    def _gather(self, index: Index, out: torch.Tensor) -> torch.Tensor:
        """Rows `index` of the host split into `out` (in a gathering thread: ATen's copy releases the GIL)."""
        if isinstance(index, slice):
            return out.copy_(self.inputs[index])
        return torch.index_select(self.inputs, 0, index, out=out)

    def _prefetched(self, indices: Iterable[Index]) -> Iterator[torch.Tensor]:
        order = iter(indices)
        pending: deque[Future[torch.Tensor]] = deque()
        copy_stream = torch.cuda.Stream(self.device) if self.to_gpu else None
        with ThreadPoolExecutor(max_workers=self.prefetch, thread_name_prefix="clipstudy-prefetch") as pool:

            def top_up() -> None:
                while len(pending) < self.prefetch:
                    index = next(order, None)
                    if index is None:
                        return
                    index = _on(index, torch.device("cpu"))
                    pending.append(pool.submit(self._gather, index, self._buffer(index)))

            try:
                top_up()
                while pending:
                    gathered = pending.popleft()
                    top_up()
                    pinned = gathered.result()
                    if copy_stream is None:
                        yield pinned
                        continue
                    compute = torch.cuda.current_stream(self.device)
                    with torch.cuda.stream(copy_stream):
                        x = pinned.to(self.device, non_blocking=True)
                    compute.wait_stream(copy_stream)
                    x.record_stream(compute)  # x's memory is not reused until the compute stream is done with it
                    yield x
            finally:
                for gathered in pending:
                    gathered.cancel()


def in_order(count: int, batch_size: int) -> Iterator[slice]:
    """Rows 0..count-1 in order, `batch_size` at a time (evaluation)."""
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))
