import math

import pytest
import torch

from clipstudy.engine import Callback, Trainer, run_trial
from clipstudy.errors import TrialFailed
from tests.conftest import interrupted_after_first_epoch


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("method", ["lora", "full_ft"])
def test_checkpoint_restore_continue_equals_uninterrupted(method, tiny_config, tmp_path):
    cfg = tiny_config(
        method,
        train__epochs=3,
        augment__hflip=0.5,
        augment__crop_scale=[0.7, 1.0],
        augment__mixup_alpha=0.4,
        augment__mix_prob=0.5,
        head__dropout=0.2,
        lora__dropout=0.1,
    )
    straight = run_trial(cfg)

    resumed = Trainer(cfg, resume_from=interrupted_after_first_epoch(cfg, tmp_path))
    assert resumed.epoch == 1
    result = resumed.fit()
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3]
    for a, b in zip(straight.history, result.history, strict=True):
        for key in ("train/loss", "train/acc", "val/loss", "val/acc", "lr"):
            if key in a:
                assert a[key] == b[key], (a["epoch"], key)
    assert_same_weights(straight.weights, result.weights)
    assert straight.metrics["test/acc"] == result.metrics["test/acc"]


@pytest.mark.parametrize(("precision", "expected"), [("auto", "fp32"), ("fp32", "fp32"), ("bf16", "bf16")])
def test_runtime_names_the_device_and_the_resolved_precision(precision, expected, tiny_config):
    trainer = Trainer(tiny_config("linear_probe", train__precision=precision))
    assert trainer.runtime == {"device": "cpu", "precision": expected}


def test_same_seed_same_run_other_seed_other_run(tiny_config):
    cfg = tiny_config("lora", train__epochs=1, augment__hflip=0.5)
    a, b = run_trial(cfg), run_trial(cfg)
    assert a.history[1]["train/loss"] == b.history[1]["train/loss"]
    c = run_trial(cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": 1})}))
    assert c.history[1]["train/loss"] != a.history[1]["train/loss"]


def test_non_finite_loss_fails_with_a_reason(tiny_config):
    cfg = tiny_config("linear_probe", train__lr=1e30, train__optimizer="sgd", train__epochs=2)
    with pytest.raises(TrialFailed, match=r"non-finite training loss .* lower train.lr") as error:
        run_trial(cfg)
    assert error.value.epoch in (1, 2)


def test_epoch_zero_is_before_training_and_selection_uses_validation(tiny_config):
    cfg = tiny_config("linear_probe", head__kind="text", train__epochs=2)
    zero_shot = run_trial(tiny_config("zero_shot"))
    result = run_trial(cfg)
    assert result.history[0]["val/acc"] == pytest.approx(zero_shot.history[0]["val/acc"])
    best = max(result.history, key=lambda h: h["val/acc"])
    assert result.metrics["best_epoch"] == best["epoch"]
    assert result.metrics["best_val/acc"] == best["val/acc"]


def test_select_last_tests_the_last_epoch(tiny_config):
    result = run_trial(tiny_config("linear_probe", train__epochs=2, train__select="last"))
    assert result.metrics["best_epoch"] == 2


def test_callbacks_see_every_epoch_and_can_stop(tiny_config):
    seen = []

    class Recorder(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            seen.append((epoch, metrics["val/acc"]))
            return epoch == 2

    result = run_trial(tiny_config("linear_probe", train__epochs=5), [Recorder()])
    assert [e for e, _ in seen] == [0, 1, 2]
    assert len(result.history) == 3
    assert all(math.isfinite(acc) for _, acc in seen)


def test_checkpoint_holds_what_resumption_needs(tiny_config, tmp_path):
    trainer = Trainer(tiny_config("lora", train__epochs=1))
    trainer.fit()
    state = torch.load(trainer.save_checkpoint(tmp_path / "c.pt"), weights_only=False)
    assert {"epoch", "model", "optimizer", "scheduler", "rng", "history", "best"} <= state.keys()
    assert state["epoch"] == 1 and state["optimizer"]["state"]
    assert set(state["model"]) == {n for n, p in trainer.model.named_parameters() if p.requires_grad}


def test_bf16_autocast_trains_with_finite_metrics(tiny_config):
    trainer = Trainer(tiny_config("lora", train__precision="bf16"))
    assert trainer.autocast_dtype == torch.bfloat16
    result = trainer.fit()
    assert math.isfinite(result.history[1]["train/loss"]) and math.isfinite(result.history[1]["val/loss"])
    assert all(w.dtype == torch.float32 for w in result.weights.values())


def test_auto_precision_is_fp32_on_cpu(tiny_config):
    assert Trainer(tiny_config("zero_shot")).autocast_dtype is None
