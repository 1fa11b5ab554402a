"""clipstudy-micro, pretrained offline (`pretrained: synthetic`): what the CLIP methods are chosen for, measured.

Digits (scikit-learn's handwriting, 8 px) are a domain shift from the corpus's rendered font digits; `shapes`
is a second task no arm trains on, for retention and base-to-new.
"""

from __future__ import annotations

import json
from functools import partial

import pytest
import torch

from clipstudy.engine import Trainer
from clipstudy.models import build_model
from clipstudy.models.names import MICRO_ARCH, PACKAGED_WEIGHTS, WEIGHTS_FILE
from clipstudy.studyfile import build_config

FOLDER = PACKAGED_WEIGHTS[MICRO_ARCH]["synthetic"]
CHANCE = 0.1


@pytest.fixture
def micro(tmp_path):
    def make(method: str, **overrides):
        base = {
            "method": method,
            "model.arch": MICRO_ARCH,
            "model.pretrained": "synthetic",
            "data.name": "digits",
            "data.cache_dir": str(tmp_path / "features"),
            "train.epochs": 3,
            "train.batch_size": 64,
            "train.device": "cpu",
            "train.seed": 0,
        }
        return build_config(base, {k.replace("__", "."): v for k, v in overrides.items()})

    return make


def test_the_shipped_weights_are_small_and_load_as_their_hub_config_says():
    assert (FOLDER / WEIGHTS_FILE).stat().st_size <= 8 * 2**20
    built = build_model(build_config({"model.arch": MICRO_ARCH, "model.pretrained": "synthetic"}, {}).model)
    assert built.build_source == str(FOLDER / "open_clip_config.json")
    assert built.image_size == 32 and built.model.visual.conv1.weight.dtype == torch.float32
    record = json.loads((FOLDER / "pretraining.json").read_text())
    assert record["seed"] == 0 and record["held_out_retrieval_accuracy"] > 0.3  # of 1,000 captions (chance 0.001)


def test_zero_shot_on_digits_is_well_above_chance(micro):
    result = Trainer(micro("zero_shot")).fit()
    assert result.metrics["test/acc"] >= 3 * CHANCE


def test_a_text_initialised_head_starts_at_zero_shot_accuracy(micro):
    zero_shot = Trainer(micro("zero_shot")).fit()
    probe = Trainer(micro("linear_probe", head__kind="text", train__epochs=1)).fit()
    assert probe.history[0]["val/acc"] == pytest.approx(zero_shot.history[0]["val/acc"], abs=1e-9)


@pytest.mark.slow
def test_full_fine_tuning_forgets_more_than_lora_and_wise_ft_gets_some_back(micro):
    retention = {"eval__retention": ["shapes"], "wise__alphas": [0.0, 0.5, 1.0]}
    trainer = Trainer(micro("full_ft", train__backbone_lr=3e-3, head__kind="text", wise__enabled=True, **retention))
    full = trainer.fit()
    lora = Trainer(micro("lora", train__lr=3e-3, head__kind="text", **retention)).fit()
    full_delta, lora_delta = full.metrics["retention/shapes/delta"], lora.metrics["retention/shapes/delta"]
    assert full_delta < -0.1 and full_delta < lora_delta  # forgetting, measured
    assert full.metrics["retention/shapes/zs_acc"] > 3 * (1 / 8)
    # WiSE-FT: halfway between the original and the fine-tuned weights keeps more of `shapes` than α = 1
    set_alpha = partial(trainer.method.set_ensemble, trainer.model, trainer.wise_origin, full.weights)
    retained = {}
    for alpha in (0.5, 1.0):
        set_alpha(alpha)
        retained[alpha] = trainer._transfer_metrics(0.0)["retention/shapes/acc"]
    assert retained[1.0] == pytest.approx(full.metrics["retention/shapes/acc"])
    assert retained[0.5] > retained[1.0] + 0.05


def test_base_to_new_new_classes_are_recognised_zero_shot(micro):
    result = Trainer(micro("lora", data__classes="base", head__kind="text")).fit()
    assert result.metrics["test/new_acc"] > 2 * (1 / 5)  # 5 new digits


def test_accuracy_rises_with_the_shots(micro):
    """The CLIP paper's few-shot protocol: logistic regression on frozen features, C chosen on validation."""
    accuracy = {
        shots: Trainer(micro("linear_probe", data__shots=shots, probe__solver="logreg")).fit().metrics["test/acc"]
        for shots in (1, 4, 16)
    }
    assert accuracy[1] < accuracy[4] < accuracy[16] and accuracy[16] > accuracy[1] + 0.1
