"""WiSE-FT (Wortsman et al. 2022) after the test: the α curve of weight ensembles between the original and the
fine-tuned model.

What α interpolates is the method's choice (`Method.ensemble_origin` / `set_ensemble`): both towers and a
text head for full fine-tuning, FLYP and CLIP-CITE; the adapters' scale for LoRA. A linear or MLP head
keeps its trained weights, so for such a head α=0 is the original backbone under the trained head.

The trainer hands over what the curve needs as functions (set the model to an α, predict a split, measure
the transfer metrics of the model as it is), so this module knows nothing of the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Curves = dict[str, list[tuple[int, float]]]
"""Metric histories with their own steps (step = round(100·α))."""


def weight_ensemble_curve(
    alphas: Sequence[float],
    set_alpha: Callable[[float], None],
    predict: Callable[[str], tuple[torch.Tensor, torch.Tensor]],
    transfer_metrics: Callable[[float], dict[str, float]],
) -> tuple[Curves, dict[str, float]]:
    """Evaluate every α of `alphas` on val and test: (the curves, the metrics of the α with the best validation
    accuracy, ties broken by the lower validation loss). The metrics include the base-to-new and retention
    metrics of that ensemble (`wise/test/new_acc`, `wise/retention/<name>/acc`, ...) when the trial measures
    them. `predict(split)` gives (logits, labels); the model is left as fine-tuned (α=1)."""
    curves: Curves = {"wise/val_acc": [], "wise/val_loss": [], "wise/test_acc": []}
    best: tuple[tuple[float, float], float, float, float] | None = None
    for alpha in alphas:
        set_alpha(alpha)
        val_logits, val_labels = predict("val")
        test_logits, test_labels = predict("test")
        val_acc = float((val_logits.argmax(dim=1) == val_labels).float().mean())
        val_loss = float(F.cross_entropy(val_logits, val_labels))
        test_acc = float((test_logits.argmax(dim=1) == test_labels).float().mean())
        step = round(alpha * 100)
        curves["wise/val_acc"].append((step, val_acc))
        curves["wise/val_loss"].append((step, val_loss))
        curves["wise/test_acc"].append((step, test_acc))
        if best is None or (val_acc, -val_loss) > best[0]:
            best = ((val_acc, -val_loss), alpha, val_acc, test_acc)
    _, alpha, val_acc, test_acc = best
    set_alpha(alpha)
    transfer = transfer_metrics(test_acc)  # base-to-new and retention of the chosen ensemble, if asked
    set_alpha(1.0)
    metrics = {f"wise/{key}": value for key, value in transfer.items()}
    metrics.update({"wise/best_alpha": alpha, "wise/val_acc_at_best": val_acc, "wise/test_acc_at_best": test_acc})
    return curves, metrics
