"""The step loop reads nothing back from the device per step: checked on the CPU, for every method that trains.

On a GPU, reading a value the GPU computed (`float(t)`, `bool(t)`, `t.item()`, `nonzero`, boolean indexing)
makes the host wait for the GPU's queue to drain, which starves it. CUDA's sync debug mode counts those
waits (tests/engine/test_cuda.py, bench/gpu_check.py), but only on a GPU, and CI has none. `HostReads` finds
the same places on the CPU: a dispatch mode follows every tensor that derives from the model and the data
(an op's outputs are marked when one of its inputs is), and records the ops that read such a tensor's values
into Python or into a shape. Values the host draws for itself (augmentation parameters from the CPU RNG)
are not marked: on a GPU those are read before they travel.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakTensorKeyDictionary

import clipstudy.engine.trainer as trainer_module
from clipstudy.config import LossConfig
from clipstudy.engine import Trainer
from clipstudy.methods import METHODS
from tests.conftest import seed000_augment

aten = torch.ops.aten
READS_VALUES = {
    aten._local_scalar_dense,  # item(), float(), int(), bool()
    aten.nonzero,
    aten.masked_select,
    aten.equal,
    aten._unique2,
    aten.unique_dim,
    aten.unique_consecutive,
    aten.repeat_interleave,
    aten.bincount,
}
"""Ops whose result (a Python number, or an output's shape) depends on the input's values: on CUDA each waits."""

CPU_ONLY_CHECKS = {torch.nn.functional.one_hot}
"""Functions whose CPU kernel reads its input but whose CUDA kernel does not: ATen's CPU `one_hot` checks the
labels' range with `min().item()` and `max().item()`; with `num_classes` given, the CUDA one leaves that to
scatter's device asserts. Reads inside them are not counted."""

SEED000_AUGMENT = seed000_augment()


class HostReads(TorchDispatchMode):
    """Records the value reads of tensors derived from `sources` (and of what derives from those, and so on)."""

    def __init__(self, sources: list[torch.Tensor]):
        super().__init__()
        self.marked: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
        for tensor in sources:
            self.marked[tensor] = True
        self.reads: Counter[str] = Counter()
        self.cpu_only_depth = 0
        self.cpu_only = _CpuOnlyChecks(self)

    def __enter__(self):
        self.cpu_only.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        return self.cpu_only.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        derived = any(t in self.marked for t in inputs)
        reads = func.overloadpacket in READS_VALUES or _boolean_index(func, args)
        if derived and reads and not self.cpu_only_depth:
            self.reads[str(func.overloadpacket)] += 1
        out = func(*args, **kwargs)
        if derived:
            for tensor in [*tree_leaves(out), *_written(func, args, kwargs)]:
                if isinstance(tensor, torch.Tensor):
                    self.marked[tensor] = True
        return out

    @property
    def total(self) -> int:
        return sum(self.reads.values())


class _CpuOnlyChecks(TorchFunctionMode):
    """Tells `HostReads` when a call of `CPU_ONLY_CHECKS` is under way."""

    def __init__(self, reads: HostReads):
        super().__init__()
        self.host_reads = reads

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func not in CPU_ONLY_CHECKS:
            return func(*args, **(kwargs or {}))
        self.host_reads.cpu_only_depth += 1
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.host_reads.cpu_only_depth -= 1


def _boolean_index(func, args) -> bool:
    """`x[mask]` and `x[mask] = v`: the kernel counts the mask's true entries (a `nonzero`) to size its result."""
    if func.overloadpacket not in (aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_):
        return False
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in tree_leaves(args[1]))


def _written(func, args, kwargs) -> list:
    """The tensors an op writes in place (e.g. the optimizer's fused updates, which return nothing)."""
    written = []
    for position, argument in enumerate(func._schema.arguments):
        if argument.alias_info is not None and argument.alias_info.is_write:
            value = kwargs.get(argument.name, args[position] if position < len(args) else None)
            written.extend(tree_leaves(value))
    return written


def sources(trainer: Trainer) -> list[torch.Tensor]:
    """What lives on the device during a step: the weights, their buffers, the data splits."""
    split = [t for inputs_labels in trainer.sources.values() for t in inputs_labels]
    return [*trainer.model.parameters(), *trainer.model.buffers(), *split]


TRAINING_METHODS = METHODS.names(where=lambda method: method.trains)


def epoch_with_reads(trainer: Trainer, epoch: int) -> tuple[dict[str, float], HostReads]:
    with HostReads(sources(trainer)) as reads:
        metrics = trainer._train_epoch(epoch)
    return metrics, reads


def seed000_trainer(tiny_config, method: str, **overrides) -> Trainer:
    """About 15 steps of `method` with the seed-000 augmentation (without Mixup/CutMix where the method's loss pairs
    each image with its class's text, which refuses mixing); batches gathered in this thread (`prefetch: 0`), where
    the mode sees them."""
    augment = dict(SEED000_AUGMENT)
    if any(weight for key, weight in METHODS.get(method).loss_weights(LossConfig()).items() if key != "ce_weight"):
        augment.update(augment__mixup_alpha=0.0, augment__cutmix_alpha=0.0)
    cfg = tiny_config(
        method, data__samples_per_class=80, train__batch_size=16, train__prefetch=0, **{**augment, **overrides}
    )
    return Trainer(cfg)


BOTH_TOWERS = {"lora__towers": ["vision", "text"], "head__kind": "text", "prompts__train_templates": "sample"}
"""LoRA on both towers with a text head: the step's class prompts go through the adapted text tower every step
(the GPU check's `lora_both_towers_text_head`), one drawn template per class."""
CASES = [*((method, {}) for method in TRAINING_METHODS), ("lora", BOTH_TOWERS)]


@pytest.mark.parametrize(("method", "overrides"), CASES, ids=[*TRAINING_METHODS, "lora_both_towers_text_head"])
def test_an_epoch_reads_device_values_only_at_the_finite_checks_and_the_totals(tiny_config, method, overrides):
    """What an epoch may read: the finite-loss checks (every 25 steps and the last), its loss and accuracy totals
    and one total per logged loss term; a read per step would add about 15."""
    trainer = seed000_trainer(tiny_config, method, **overrides)
    steps = trainer.steps_per_epoch
    metrics, reads = epoch_with_reads(trainer, 1)
    checks = len({step for step in range(steps) if step % trainer_module.FINITE_CHECK_EVERY == 0} | {steps - 1})
    terms = sum(key.startswith("train/loss_") for key in metrics)
    assert steps >= 12, steps
    assert checks <= reads.total <= checks + 2 + terms, (steps, terms, dict(reads.reads))


@pytest.mark.parametrize("method", ["lora", "linear_probe"])
def test_predicting_a_split_reads_no_device_value(tiny_config, method):
    """Validation and feature extraction go through the evaluator: its batches never wait for the device."""
    trainer = seed000_trainer(tiny_config, method, **(BOTH_TOWERS if method == "lora" else {}))
    trainer.model.eval()
    with HostReads(sources(trainer)) as reads:
        logits, _ = trainer.predict("val")
    assert len(logits) > trainer.cfg.train.batch_size and reads.total == 0, dict(reads.reads)


def test_a_read_per_step_is_found(tiny_config, monkeypatch):
    """The check above can fail: a finite-loss check at every step is a read at every step."""
    monkeypatch.setattr(trainer_module, "FINITE_CHECK_EVERY", 1)
    trainer = seed000_trainer(tiny_config, "lora")
    _, reads = epoch_with_reads(trainer, 1)
    assert reads.reads[str(aten._local_scalar_dense)] >= trainer.steps_per_epoch


def test_values_the_host_draws_for_itself_are_not_counted():
    """Reads of tensors that do not derive from the sources (the CPU RNG's augmentation draws) are free."""
    weight = torch.ones(3)
    with HostReads([weight]) as reads:
        float(torch.rand(()))
        torch.randn(5)[torch.randn(5) > 0]
        assert reads.total == 0
        float((weight * 2).sum())
        (weight + 1)[weight > 0]
    assert reads.reads == {str(aten._local_scalar_dense): 1, str(aten.index): 1}


def test_the_cpu_range_check_of_one_hot_is_not_counted():
    labels = torch.tensor([0, 2, 1])
    with HostReads([labels]) as reads:
        torch.nn.functional.one_hot(labels, 3)
        assert reads.total == 0
        int(labels.max())
    assert reads.total == 1
