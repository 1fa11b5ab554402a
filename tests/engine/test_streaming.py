"""BatchStream: the batches a split yields by index are the same whether it is indexed in place, gathered in
the step or gathered ahead in threads; a stream closed early leaves no thread behind."""

from __future__ import annotations

import threading

import pytest
import torch

from clipstudy.engine import Trainer
from clipstudy.engine.evaluator import Evaluator
from clipstudy.engine.streaming import BatchStream, in_order

CPU = torch.device("cpu")
IMAGES = torch.randint(0, 256, (53, 3, 5, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def shuffled(batch_size: int) -> tuple[torch.Tensor, ...]:
    return torch.randperm(len(IMAGES), generator=torch.Generator().manual_seed(1)).split(batch_size)


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_shuffled_batches_equal_direct_indexing(prefetch):
    batches = shuffled(8)
    streamed = list(BatchStream(IMAGES, CPU, prefetch)(batches))
    assert [len(x) for x in streamed] == [8] * 6 + [5]
    for index, x in zip(batches, streamed, strict=True):
        assert torch.equal(x, IMAGES[index])


@pytest.mark.parametrize("prefetch", [0, 2])
def test_slices_cover_the_split_in_order(prefetch):
    streamed = list(BatchStream(IMAGES, CPU, prefetch)(in_order(len(IMAGES), 10)))
    assert [len(x) for x in streamed] == [10] * 5 + [3]
    assert torch.equal(torch.cat(streamed), IMAGES)


def test_a_stream_closed_early_stops_its_threads():
    stream = BatchStream(IMAGES, CPU, prefetch=3)(shuffled(4))
    first = next(stream)
    assert torch.equal(first, IMAGES[shuffled(4)[0]])
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("clipstudy-prefetch")]


def test_evaluator_output_does_not_depend_on_prefetch():
    model = torch.nn.Linear(60, 3)
    images = IMAGES.flatten(1)
    outputs = [Evaluator(CPU, lambda x: x.float() / 255, 7, prefetch=p).predict(model, images) for p in (0, 2)]
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_a_trial_trains_identically_with_and_without_prefetch(tiny_config):
    histories = []
    for prefetch in (0, 2):
        result = Trainer(tiny_config("lora", train__prefetch=prefetch, train__epochs=2)).fit()
        histories.append([(h.get("train/loss"), h["val/acc"]) for h in result.history])
    assert histories[0] == histories[1]
