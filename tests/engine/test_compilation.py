"""train.compile: the blocks compiled are the towers' transformer blocks, the weights keep their names, and a
compiled trial computes what the eager one does (CPU, inductor)."""

from __future__ import annotations

import pytest
import torch

from clipstudy.engine import Trainer
from clipstudy.engine.compilation import compile_towers, transformer_blocks
from clipstudy.models.build import build_model
from clipstudy.studyfile import build_config


def test_the_blocks_are_both_towers_transformer_blocks():
    clip = build_model(build_config({"model.arch": "clipstudy-tiny"}).model, torch.device("cpu")).model
    blocks = transformer_blocks(clip)
    expected = [*clip.visual.transformer.resblocks, *clip.transformer.resblocks]
    assert len(blocks) == len(expected) > 0 and all(a is b for a, b in zip(blocks, expected, strict=True))


def test_compiling_in_place_keeps_the_weight_names():
    clip = build_model(build_config({"model.arch": "clipstudy-tiny"}).model, torch.device("cpu")).model
    names = list(clip.state_dict())
    assert compile_towers(clip) == len(transformer_blocks(clip))
    assert list(clip.state_dict()) == names


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full_ft"])
def test_a_compiled_trial_matches_the_eager_one(method, tiny_config):
    """Same losses, accuracies and trained weights, to float rounding (inductor reorders reductions). AdamW
    turns a rounding difference in a near-zero gradient into up to a whole step of lr (1e-3 here), so the
    weights are compared to half a step."""
    results = [Trainer(tiny_config(method, train__compile=flag, train__epochs=2)).fit() for flag in (False, True)]
    eager, compiled = results
    for a, b in zip(eager.history, compiled.history, strict=True):
        assert a.keys() == b.keys()
        for key in ("train/loss", "val/loss", "val/acc"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
    assert compiled.metrics["test/acc"] == eager.metrics["test/acc"]
    for name, weight in eager.weights.items():
        torch.testing.assert_close(compiled.weights[name], weight, rtol=0, atol=5e-4)
