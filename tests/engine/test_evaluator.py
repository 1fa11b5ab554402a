"""The Evaluator: batches in order, transforms images (not features), casts, and predicts what one pass would."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clipstudy.engine import Trainer
from clipstudy.engine.evaluator import Evaluator

CPU = torch.device("cpu")


def double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def test_batches_cover_the_inputs_in_order_and_transform_images_only():
    inputs = torch.arange(10.0).view(10, 1)
    evaluator = Evaluator(CPU, double, batch_size=4)
    images = list(evaluator.batches(inputs))
    assert [len(b) for b in images] == [4, 4, 2]
    assert torch.equal(torch.cat(images), inputs * 2)
    assert torch.equal(torch.cat(list(evaluator.batches(inputs, images=False))), inputs)


def test_batched_prediction_equals_one_pass():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    inputs = torch.randn(23, 6)
    with torch.no_grad():
        one_pass = model(inputs)
    for batch_size in (1, 4, 23, 64):
        predicted = Evaluator(CPU, double, batch_size).predict(model, inputs, images=False)
        torch.testing.assert_close(predicted, one_pass)
        assert not predicted.requires_grad


def test_prediction_is_float32_under_autocast_and_encoding_lands_on_cpu():
    model = nn.Linear(4, 2)
    evaluator = Evaluator(CPU, double, batch_size=3, autocast_dtype=torch.bfloat16)
    inputs = torch.randn(7, 4)
    with evaluator.autocast():
        assert model(inputs).dtype == torch.bfloat16
    predicted = evaluator.predict(model, inputs)
    assert predicted.dtype == torch.float32 and predicted.shape == (7, 2)
    encoded = evaluator.encode(model, inputs)
    assert encoded.device == CPU and torch.equal(encoded, predicted)


@pytest.mark.parametrize("method", ["linear_probe", "lora"])
def test_the_trainer_predicts_a_split_through_its_evaluator(method, tiny_config):
    """Cached features (linear probe) go straight to the head, images (LoRA) through the eval transform."""
    trainer = Trainer(tiny_config(method, train__eval_batch_size=5))
    assert trainer.evaluator.batch_size == 5 and trainer.evaluator.transform is trainer.eval_transform
    logits, labels = trainer.predict("val")
    inputs, expected_labels = trainer.sources["val"]
    assert torch.equal(labels, expected_labels)
    with torch.no_grad():
        one_pass = trainer.model.classify(inputs) if trainer.cached else trainer.model(trainer.eval_transform(inputs))
    assert trainer.cached == (method == "linear_probe")
    torch.testing.assert_close(logits, one_pass)


def test_the_eval_batch_size_defaults_to_twice_the_training_batch(tiny_config):
    assert Trainer(tiny_config("zero_shot", train__batch_size=16)).evaluator.batch_size == 32
