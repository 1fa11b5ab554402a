"""Zero-shot evaluation on classes or datasets a model was not trained on: base-to-new and retention.

Both measure the model as it leaves training, through its own towers: images through its current
image encoder (fine-tuned, LoRA-adapted or frozen) and the class prompts through its current text
tower (LoRA on the text tower included), the class embeddings built as CLIP builds its zero-shot
classifier. A trained head (linear, MLP, or a text head's fine-tuned rows) plays no part: it has no
row for a class it never saw. So a linear probe's new-class accuracy N equals zero-shot CLIP's, while
a method that adapts a tower moves it (the CoOp / CLIP-CITE protocol).

- Base-to-new (`data.classes: base`): test/base_acc (B, the test split of the base classes, i.e.
  test/acc), test/new_acc (N) and test/hm = 2BN / (B + N).
- Retention (`eval.retention`): per dataset, retention/<name>/acc (the adapted model),
  retention/<name>/zs_acc (the untouched model, rebuilt from the trial's model config and seed) and
  retention/<name>/delta = acc - zs_acc: forgetting, measured.

`prompts.custom` and `prompts.classnames` belong to the trial's own dataset, so they apply to its new
classes too; a retention dataset is prompted with its own class names and templates (`prompts.templates`
still picks all of them or the first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from clipstudy.config import DataConfig, TrialConfig
from clipstudy.data import DataBundle, EvalSet, Split, open_eval_set
from clipstudy.data.templates import choose_templates
from clipstudy.engine.evaluator import Evaluator
from clipstudy.errors import DataError
from clipstudy.methods.base import prompt_classnames
from clipstudy.models.build import build_clip
from clipstudy.models.heads import tokenize_prompts
from clipstudy.models.text import class_embeddings


@dataclass
class TransferSets:
    """What a trial evaluates zero-shot after its test split."""

    new_classes: EvalSet | None = None
    retention: list[EvalSet] = field(default_factory=list)
    interpolation: str = "bicubic"
    """How retention images are decoded: the model's resampling, as the trial's own."""


def harmonic_mean(base: float, new: float) -> float:
    """HM = 2·B·N / (B + N), the base-to-new summary; 0 when both are 0."""
    return 2 * base * new / (base + new) if base + new else 0.0


def open_transfer_sets(
    cfg: TrialConfig, data: DataBundle, image_size: int, interpolation: str = "bicubic"
) -> TransferSets:
    """The new classes of `data` and every retention dataset, opened (so checked) before training: a
    missing retention dataset fails the trial at once, not after its last epoch. Retention datasets are
    read like `data.name` (same data.root, download, split seed) and decoded only when evaluated.

    The new classes are prompted as the trial's own (`prompts.custom`, `prompts.classnames`); retention
    datasets keep their own names and templates."""
    retention = [open_eval_set(data_cfg, image_size, cfg.eval.retention_per_class) for data_cfg in retention_data(cfg)]
    new_classes = data.new_classes
    if new_classes is not None:
        names = prompt_classnames(cfg, data)[1]
        new_classes = replace(new_classes, classnames=names, templates=cfg.prompts.custom or new_classes.templates)
    return TransferSets(new_classes, retention, interpolation)


def retention_data(cfg: TrialConfig) -> list[DataConfig]:
    """The data configs of `eval.retention`'s datasets: read like `data.name` (same data.root, download, split
    seed), whole (no few-shot draw, every class)."""
    update = {"shots": None, "shot_seed": None, "classes": "all"}
    return [cfg.data.model_copy(update={"name": name, **update}) for name in cfg.eval.retention]


@torch.no_grad()
def zero_shot_accuracy(
    clip: nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    eval_set: EvalSet,
    templates: list[str],
    evaluator: Evaluator,
) -> float:
    """Top-1 accuracy of CLIP's zero-shot classifier for `eval_set`'s classes, built by `clip` itself."""
    test = eval_set.test
    if not isinstance(test, Split):
        raise TypeError(f"{eval_set.name}: decode the evaluation set first (EvalSet.loaded())")
    if not len(test):
        raise DataError(f"{eval_set.name}: its test split holds no images, so there is no accuracy to measure")
    clip.eval()
    tokens = tokenize_prompts(tokenizer, eval_set.classnames, templates).to(evaluator.device)
    with evaluator.autocast():
        weights = class_embeddings(clip, tokens, len(eval_set.classnames))
    correct = 0
    labels = test.labels.split(evaluator.batch_size)
    for images, batch_labels in zip(evaluator.batches(test.images), labels, strict=True):
        with evaluator.autocast():
            features = clip.encode_image(images)
        predicted = (F.normalize(features.float(), dim=-1) @ weights.T).argmax(dim=1).cpu()
        correct += int((predicted == batch_labels).sum())
    return correct / len(test)


def original_clip(cfg: TrialConfig, device: torch.device) -> nn.Module:
    """The untouched CLIP of this trial, rebuilt as the Trainer built it: from the model config, right
    after seeding with train.seed (so `pretrained: none` draws the same random weights). The global RNG
    state is left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(cfg.train.seed)
        return build_clip(cfg.model, device).model


def transfer_metrics(
    sets: TransferSets,
    clip: nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    cfg: TrialConfig,
    evaluator: Evaluator,
    base_acc: float,
) -> dict[str, float]:
    """Base-to-new and retention metrics of the trial's CLIP (`clip`, its weights as they are now) whose test
    accuracy on the base classes is `base_acc`."""
    if sets.new_classes is None and not sets.retention:
        return {}

    def accuracy(model: nn.Module, eval_set: EvalSet) -> float:
        templates = choose_templates(eval_set.templates, cfg.prompts.templates)
        return zero_shot_accuracy(model, tokenizer, eval_set, templates, evaluator)

    metrics: dict[str, float] = {}
    if sets.new_classes is not None:
        new_acc = accuracy(clip, sets.new_classes)
        metrics["test/base_acc"], metrics["test/new_acc"] = base_acc, new_acc
        metrics["test/hm"] = harmonic_mean(base_acc, new_acc)
    if sets.retention:
        untouched = original_clip(cfg, evaluator.device)
        for eval_set in sets.retention:
            loaded = eval_set.loaded(sets.interpolation)
            acc, zs_acc = accuracy(clip, loaded), accuracy(untouched, loaded)
            prefix = f"retention/{eval_set.name}"
            metrics.update({f"{prefix}/acc": acc, f"{prefix}/zs_acc": zs_acc, f"{prefix}/delta": acc - zs_acc})
        del untouched
    return metrics
