import math

import pytest
import torch

from clipstudy.engine import Callback, Trainer, run_trial
from clipstudy.errors import ConfigError, TrialFailed
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
    state = torch.load(trainer.save_checkpoint(tmp_path / "c.pt"), weights_only=True)
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


def lrs_by_epoch(cfg) -> dict[int, list[float]]:
    """The first group's lr after every optimizer step of a run, by epoch."""
    seen: dict[int, list[float]] = {}

    class Recorder(Callback):
        def on_step_end(self, trainer, epoch, step, steps):
            seen.setdefault(epoch, []).append(trainer.optimizer.param_groups[0]["lr"])

    run_trial(cfg, [Recorder()])
    return seen


def test_scheduler_step_epoch_holds_the_lr_for_a_whole_epoch(tiny_config):
    cfg = tiny_config("linear_probe", train__epochs=3, train__lr=0.1, train__scheduler_step="epoch")
    per_epoch = lrs_by_epoch(cfg)
    assert sorted(per_epoch) == [1, 2, 3] and all(len(lrs) > 2 for lrs in per_epoch.values())
    assert all(len(set(lrs)) == 1 for lrs in per_epoch.values())
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * e / 3)) for e in range(3)]
    assert [lrs[0] for lrs in per_epoch.values()] == pytest.approx(expected)
    per_step = lrs_by_epoch(cfg.model_copy(update={"train": cfg.train.model_copy(update={"scheduler_step": "step"})}))
    assert len(set(per_step[1])) == len(per_step[1])  # stepped per iteration: a new lr after every step


def decay_of(trainer) -> dict[str, float]:
    """Each trainable parameter's weight decay in the trainer's optimizer."""
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    return {names[id(p)]: g["weight_decay"] for g in trainer.optimizer.param_groups for p in g["params"]}


def test_decay_norms_and_biases_decays_every_trainable_parameter(tiny_config):
    usual = decay_of(Trainer(tiny_config("full_ft", train__weight_decay=0.05)))
    assert usual["head.fc.weight"] == 0.05 and usual["head.fc.bias"] == 0.0
    assert usual["clip.visual.ln_post.weight"] == 0.0 and usual["clip.visual.class_embedding"] == 0.0
    trainer = Trainer(tiny_config("full_ft", train__weight_decay=0.05, train__decay_norms_and_biases=True))
    every = decay_of(trainer)
    assert every.keys() == usual.keys() == {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert set(every.values()) == {0.05}


def test_bf16_weights_train_on_cpu_with_an_fp32_head(tiny_config):
    trainer = Trainer(tiny_config("full_ft", model__weights_dtype="bf16"))
    assert trainer.autocast_dtype is None  # no autocast: the weights themselves are bf16
    assert {p.dtype for p in trainer.model.clip.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in trainer.model.head.parameters()} == {torch.float32}
    before = trainer.model.clip.visual.conv1.weight.detach().clone()
    result = trainer.fit()
    assert math.isfinite(result.history[1]["train/loss"]) and math.isfinite(result.history[1]["val/loss"])
    assert result.weights["clip.visual.conv1.weight"].dtype == torch.bfloat16
    assert result.weights["head.fc.weight"].dtype == torch.float32
    assert not torch.equal(trainer.model.clip.visual.conv1.weight, before)  # the optimizer updates bf16 weights


def test_bf16_weights_keep_lora_adapters_fp32(tiny_config):
    trainer = Trainer(tiny_config("lora", model__weights_dtype="bf16"))
    dtypes = {n: p.dtype for n, p in trainer.model.clip.named_parameters()}
    assert {d for n, d in dtypes.items() if ".lora_" in n} == {torch.float32}
    assert {d for n, d in dtypes.items() if ".lora_" not in n} == {torch.bfloat16}
    assert math.isfinite(trainer.fit().history[1]["train/loss"])


def test_an_update_below_bf16_resolution_is_lost():
    """Why model.weights_dtype exists: an fp16/bf16 weight updated in place drops updates below its resolution
    (bf16 has 8 significant bits: 1 + 1e-7 rounds to 1), as fine-tuning OpenAI's fp16 clip.load model does."""
    weights = {dtype: torch.nn.Parameter(torch.ones(1, dtype=dtype)) for dtype in (torch.bfloat16, torch.float32)}
    optimizer = torch.optim.SGD(list(weights.values()), lr=1e-7)
    for weight in weights.values():
        weight.grad = -torch.ones_like(weight)
    optimizer.step()
    assert weights[torch.bfloat16].item() == 1.0
    assert weights[torch.float32].item() == 1 + torch.finfo(torch.float32).eps  # the nearest fp32 to 1 + 1e-7


class Payload:
    """A custom object a checkpoint must not unpickle."""


def test_a_checkpoint_with_a_pickled_object_is_refused(tiny_config, tmp_path):
    cfg = tiny_config("linear_probe")
    trainer = Trainer(cfg)
    state = trainer.state_dict()
    state["extra"] = Payload()
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(
        TrialFailed, match=r"bad\.pt holds a Python object \(.*Payload\) that is not loaded, for safety"
    ):
        Trainer(cfg, resume_from=bad)
    with pytest.raises(TrialFailed, match=r"Delete it and train the trial again"):
        Trainer(cfg, resume_from=bad)


def test_fp16_weights_that_train_refuse_the_fp16_gradient_scaler(tiny_config):
    with pytest.raises(
        ConfigError, match=r"model.weights_dtype: fp16 with train.precision: fp16.*train.precision: fp32"
    ):
        Trainer(tiny_config("full_ft", model__weights_dtype="fp16", train__precision="fp16"))
    with pytest.raises(ConfigError, match=r"fp16 with train.optimizer: adamw and train.adam_eps 1e-08: .*1.0e-6"):
        Trainer(tiny_config("full_ft", model__weights_dtype="fp16"))
    lora = Trainer(tiny_config("lora", model__weights_dtype="fp16", train__precision="fp16"))  # fp32 adapters: fine
    assert lora.scaler.is_enabled()


def test_fp16_weights_train_with_adamw_once_its_eps_is_an_fp16_number(tiny_config):
    trainer = Trainer(tiny_config("full_ft", model__weights_dtype="fp16", train__adam_eps=1e-6, train__lr=1e-4))
    assert trainer.optimizer.param_groups[0]["eps"] == 1e-6
    history = trainer.fit().history
    assert all(math.isfinite(value) for value in history[1].values())
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_fp16_weights_train_with_sgd_on_cpu(tiny_config):
    trainer = Trainer(tiny_config("full_ft", model__weights_dtype="fp16", train__optimizer="sgd", train__lr=0.01))
    assert trainer.model.clip.visual.conv1.weight.dtype == torch.float16
    assert math.isfinite(trainer.fit().history[1]["train/loss"])
