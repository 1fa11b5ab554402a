"""Base-to-new (B, N, HM) and retention through the engine, on the tiny model."""

from __future__ import annotations

import pytest
import torch

from clipstudy.engine import Trainer, run_trial
from clipstudy.engine.transfer import harmonic_mean
from clipstudy.errors import DataError

SIX_CLASSES = {"data__num_classes": 6, "data__samples_per_class": 20}


@pytest.mark.parametrize(("base", "new"), [(0.8, 0.6), (0.9, 0.3), (0.5, 0.5), (1.0, 0.0), (0.7243, 0.6814)])
def test_harmonic_mean_is_2bn_over_b_plus_n(base, new):
    assert harmonic_mean(base, new) == pytest.approx(2 * base * new / (base + new))
    assert harmonic_mean(base, new) == pytest.approx(harmonic_mean(new, base))
    assert min(base, new) <= harmonic_mean(base, new) <= max(base, new)


def test_harmonic_mean_of_nothing_is_zero():
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(0.7243, 0.6814) == pytest.approx(0.7022, abs=1e-4)  # CLIP on ImageNet, CLIP-CITE Table 1


def test_base_to_new_metrics(tiny_config):
    """B is the test accuracy on the base classes, N the zero-shot accuracy on the new ones; frozen towers
    (zero-shot, linear probe) give the same N, an adapted image tower another one."""
    results = {
        method: run_trial(tiny_config(method, data__classes="base", train__epochs=2, train__lr=1e-2, **SIX_CLASSES))
        for method in ("zero_shot", "linear_probe", "full_ft")
    }
    for result in results.values():
        m = result.metrics
        assert result.classnames == ["class 0", "class 1", "class 2"] and len(result.per_class) == 3
        assert m["test/base_acc"] == m["test/acc"]
        assert 0.0 <= m["test/new_acc"] <= 1.0
        assert m["test/hm"] == pytest.approx(harmonic_mean(m["test/base_acc"], m["test/new_acc"]))
    new_acc = {method: result.metrics["test/new_acc"] for method, result in results.items()}
    assert new_acc["linear_probe"] == new_acc["zero_shot"]
    assert new_acc["full_ft"] != new_acc["zero_shot"]


def test_no_transfer_metrics_unless_asked(tiny_config):
    metrics = run_trial(tiny_config("zero_shot")).metrics
    assert not [key for key in metrics if key.startswith(("retention/", "test/new", "test/base", "test/hm"))]


def test_retention_of_an_untouched_model_is_its_zero_shot_accuracy(tiny_config):
    """The zero-shot arm: the transfer evaluation on its own dataset reproduces its test accuracy, and the
    rebuilt original model is the same model (delta exactly 0)."""
    cfg = tiny_config("zero_shot", eval__retention=["synthetic", "digits"], eval__retention_per_class=8, **SIX_CLASSES)
    m = run_trial(cfg).metrics
    assert m["retention/synthetic/acc"] == m["test/acc"]
    for name in ("synthetic", "digits"):
        assert m[f"retention/{name}/acc"] == m[f"retention/{name}/zs_acc"]
        assert m[f"retention/{name}/delta"] == 0.0


def test_retention_measures_what_fine_tuning_changed(tiny_config):
    """Full fine-tuning with a text head moves zero-shot accuracy on the training classes; zs_acc is the
    untouched model's, the same as the zero-shot arm's test accuracy."""
    tuned = run_trial(
        tiny_config("full_ft", head__kind="text", eval__retention=["synthetic"], train__epochs=3, **SIX_CLASSES)
    ).metrics
    untouched = run_trial(tiny_config("zero_shot", **SIX_CLASSES)).metrics
    assert tuned["retention/synthetic/zs_acc"] == untouched["test/acc"]
    assert tuned["retention/synthetic/acc"] != tuned["retention/synthetic/zs_acc"]
    delta = tuned["retention/synthetic/acc"] - tuned["retention/synthetic/zs_acc"]
    assert tuned["retention/synthetic/delta"] == pytest.approx(delta)


def test_retention_sets_are_opened_at_start_and_capped_per_class(tiny_config):
    trainer = Trainer(tiny_config("zero_shot", eval__retention=["digits"], eval__retention_per_class=3))
    (digits,) = trainer.transfer.retention
    assert digits.name == "digits" and len(digits.classnames) == 10
    assert torch.bincount(digits.test.labels).tolist() == [3] * 10
    accuracy = trainer.fit().metrics["retention/digits/acc"]
    assert round(accuracy * 30) == pytest.approx(accuracy * 30)  # 30 images were evaluated


def test_a_missing_retention_dataset_fails_before_training(tiny_config, tmp_path):
    cfg = tiny_config("full_ft", eval__retention=["cifar10"], data__root=str(tmp_path), data__download=False)
    with pytest.raises(DataError, match="cifar10: no usable dataset"):
        Trainer(cfg)


CUSTOM = ["a photo of a {}.", "a drawing of a {}."]
NAMES = ["thing 0", "thing 1", "thing 2", "thing 3", "thing 4", "thing 5"]


def test_custom_prompts_reach_the_new_classes_but_not_the_retention_datasets(tiny_config, monkeypatch):
    """prompts.custom/classnames name the trial's own dataset: its new classes are prompted with them, a
    retention dataset with its own names and templates."""
    from clipstudy.data.templates import DIGITS_TEMPLATES
    from clipstudy.engine import transfer

    prompted = {}
    measure = transfer.zero_shot_accuracy

    def spy(clip, tokenizer, eval_set, templates, evaluator):
        prompted.setdefault(eval_set.name, (eval_set.classnames, templates))
        return measure(clip, tokenizer, eval_set, templates, evaluator)

    monkeypatch.setattr(transfer, "zero_shot_accuracy", spy)
    cfg = tiny_config(
        "zero_shot",
        data__classes="base",
        prompts__custom=CUSTOM,
        prompts__classnames=NAMES,
        eval__retention=["digits"],
        eval__retention_per_class=2,
        **SIX_CLASSES,
    )
    trainer = Trainer(cfg)
    assert trainer.transfer.new_classes.classnames == NAMES[3:] and trainer.transfer.new_classes.templates == CUSTOM
    metrics = trainer.fit().metrics
    assert prompted["synthetic/new"] == (NAMES[3:], CUSTOM)
    digits_names, digits_templates = prompted["digits"]
    assert digits_templates == DIGITS_TEMPLATES and len(digits_names) == 10 and digits_names[0] != NAMES[0]
    assert 0.0 <= metrics["test/new_acc"] <= 1.0 and metrics["retention/digits/delta"] == 0.0


def test_classnames_for_the_base_classes_only_leave_the_new_ones_their_names(tiny_config):
    cfg = tiny_config("zero_shot", data__classes="base", prompts__classnames=NAMES[:3], **SIX_CLASSES)
    new = Trainer(cfg).transfer.new_classes
    assert new.classnames == ["class 3", "class 4", "class 5"] and new.templates == ["a photo of a {}."]


def test_zero_shot_accuracy_is_unchanged_by_prompt_truncation(tiny_config, monkeypatch):
    from clipstudy.models import text

    cfg = tiny_config("zero_shot", data__classes="base", **SIX_CLASSES)
    cut = run_trial(cfg).metrics["test/new_acc"]
    monkeypatch.setattr(text, "causal_text", lambda clip: None)
    assert run_trial(cfg).metrics["test/new_acc"] == cut
