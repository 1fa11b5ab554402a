"""WiSE-FT after the test: α=0 is the original model, α=1 the fine-tuned one, the best α chosen on val."""

import copy

import pytest
import torch

from clipstudy.engine import Trainer
from clipstudy.engine.weight_ensemble import weight_ensemble_curve


def params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def assert_equal_weights(model, expected, names=None):
    for name, param in model.named_parameters():
        if names is None or name in names:
            assert torch.equal(param.detach().cpu(), expected[name].cpu()), name


def test_clip_cite_curve_spans_zero_shot_to_fine_tuned(tiny_config):
    cfg = tiny_config("clip_cite", wise__enabled=True, wise__alphas=[0.0, 0.3, 0.6, 1.0], train__lr=1e-3)
    trainer = Trainer(cfg)
    original = params(trainer.model)
    result = trainer.fit()
    curve = dict(result.curves["wise/val_acc"])
    assert sorted(curve) == [0, 30, 60, 100]
    assert curve[0] == result.history[0]["val/acc"]  # α=0 is the zero-shot model, exactly
    assert curve[100] == result.metrics["best_val/acc"]  # α=1 is the selected fine-tuned model
    assert dict(result.curves["wise/test_acc"])[100] == pytest.approx(result.metrics["test/acc"])
    best = result.metrics["wise/best_alpha"]
    assert result.metrics["wise/val_acc_at_best"] == max(curve.values()) == curve[round(100 * best)]
    assert result.metrics["wise/test_acc_at_best"] == dict(result.curves["wise/test_acc"])[round(100 * best)]
    assert_equal_weights(trainer.model, result.weights, set(result.weights))  # left fine-tuned

    finetuned, origin = result.weights, trainer.wise_origin
    assert set(origin) == set(finetuned)  # both towers (the head is the live text tower)
    trainer.method.set_ensemble(trainer.model, origin, finetuned, 0.0)
    assert_equal_weights(trainer.model, original)
    trainer.method.set_ensemble(trainer.model, origin, finetuned, 1.0)
    assert_equal_weights(trainer.model, {**original, **finetuned})


def test_lora_alpha_scales_the_adapters(tiny_config):
    cfg = tiny_config("lora", wise__enabled=True, wise__alphas=[0.0, 0.5, 1.0], train__lr=1e-2, train__select="last")
    trainer = Trainer(cfg)
    base = copy.deepcopy(trainer.built.model)  # open_clip model with its adapters at B = 0
    result = trainer.fit()
    assert [step for step, _ in result.curves["wise/val_acc"]] == [0, 50, 100]
    images = next(trainer.evaluator.batches(trainer.sources["val"][0]))
    trainer.model.eval()
    base.eval()
    with torch.no_grad():
        trained = trainer.model.clip.encode_image(images)
        trainer.method.set_ensemble(trainer.model, trainer.wise_origin, result.weights, 0.0)
        assert torch.equal(trainer.model.clip.encode_image(images), base.encode_image(images))
        trainer.method.set_ensemble(trainer.model, trainer.wise_origin, result.weights, 1.0)
        assert torch.equal(trainer.model.clip.encode_image(images), trained)
    assert not torch.equal(trained, base.encode_image(images))


def test_a_trained_linear_head_is_kept_at_every_alpha(tiny_config):
    trainer = Trainer(tiny_config("full_ft", wise__enabled=True, wise__alphas=[0.0, 1.0], train__select="last"))
    original = params(trainer.model)
    result = trainer.fit()
    assert not any(name.startswith("head.") for name in trainer.wise_origin)
    trainer.method.set_ensemble(trainer.model, trainer.wise_origin, result.weights, 0.0)
    head = {n for n in original if n.startswith("head.")}
    assert_equal_weights(trainer.model, result.weights, head)
    assert_equal_weights(trainer.model, original, set(original) - head)


def test_a_linear_probe_has_no_ensemble(tiny_config):
    result = Trainer(tiny_config("linear_probe", wise__enabled=True)).fit()
    assert result.curves == {} and not any(k.startswith("wise/") for k in result.metrics)


def test_base_to_new_metrics_are_measured_on_the_chosen_ensemble(tiny_config):
    zero_shot = Trainer(tiny_config("zero_shot", data__classes="base")).fit()
    cfg = tiny_config("clip_cite", data__classes="base", wise__enabled=True, wise__alphas=[0.0], train__lr=1e-2)
    result = Trainer(cfg).fit()
    assert result.metrics["wise/best_alpha"] == 0.0  # the only choice: the original model
    assert result.metrics["wise/test_acc_at_best"] == zero_shot.metrics["test/acc"]
    assert result.metrics["wise/test/new_acc"] == zero_shot.metrics["test/new_acc"]
    assert result.metrics["wise/test/base_acc"] == result.metrics["wise/test_acc_at_best"]
    assert "test/new_acc" in result.metrics  # the fine-tuned model's own, as before


def test_the_best_alpha_is_chosen_on_validation_ties_by_the_lower_loss():
    """A model that is only its α: logits per α set by hand, so accuracy and loss of every α are known."""
    labels = torch.tensor([0, 1, 0, 1])
    right, wrong = torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 2.0], [2.0, 0.0]])
    val = {  # α=0.5 and α=1 both get 3 of 4 right; α=0.5 is more confident, so its loss is lower
        0.0: torch.cat([right[:1], wrong[1:], wrong]),
        0.5: torch.cat([right, right[:1] * 2, wrong[1:] * 0.1]),
        1.0: torch.cat([right, right[:1], wrong[1:]]),
    }
    test = {0.0: torch.cat([wrong, wrong]), 0.5: torch.cat([right, wrong]), 1.0: torch.cat([right, right])}
    state, transferred = {"alpha": None}, []

    def set_alpha(alpha: float) -> None:
        state["alpha"] = alpha

    def predict(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return (val if split == "val" else test)[state["alpha"]], labels

    def transfer(base_acc: float) -> dict[str, float]:
        transferred.append((state["alpha"], base_acc))
        return {"test/new_acc": 0.25}

    curves, metrics = weight_ensemble_curve([0.0, 0.5, 1.0], set_alpha, predict, transfer)
    assert curves["wise/val_acc"] == [(0, 0.25), (50, 0.75), (100, 0.75)]
    assert curves["wise/test_acc"] == [(0, 0.0), (50, 0.5), (100, 1.0)]
    assert [step for step, _ in curves["wise/val_loss"]] == [0, 50, 100]
    assert dict(curves["wise/val_loss"])[50] < dict(curves["wise/val_loss"])[100]
    assert metrics == {
        "wise/test/new_acc": 0.25,
        "wise/best_alpha": 0.5,
        "wise/val_acc_at_best": 0.75,
        "wise/test_acc_at_best": 0.5,
    }
    assert transferred == [(0.5, 0.5)]  # measured on the chosen ensemble, its test accuracy as the base
    assert state["alpha"] == 1.0  # left fine-tuned
