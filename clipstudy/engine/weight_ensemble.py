"""WiSE-FT after the test: the α curve of weight ensembles between the original and the fine-tuned model.

What α interpolates is the method's choice (`Method.ensemble_origin` / `set_ensemble`): both towers and a
text head for full fine-tuning, FLYP and CLIP-CITE; the adapters' scale for LoRA. A linear or MLP head
keeps its trained weights, so for such a head α=0 is the original backbone under the trained head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F

from clipstudy.engine.transfer import transfer_metrics

if TYPE_CHECKING:
    from clipstudy.engine.trainer import Trainer, TrialResult


def weight_ensemble_curve(trainer: Trainer, result: TrialResult) -> None:
    """Evaluate every α of `wise.alphas` on val and test; add the curves (step = round(100·α)) and the α
    with the best validation accuracy (ties: the lower validation loss) to `result`, with the base-to-new
    and retention metrics of that ensemble (`wise/test/new_acc`, `wise/retention/<name>/acc`, ...) when the
    trial measures them. The model is left as fine-tuned."""
    method, model, origin = trainer.method, trainer.model, trainer.wise_origin
    finetuned = result.weights
    curves: dict[str, list[tuple[int, float]]] = {"wise/val_acc": [], "wise/val_loss": [], "wise/test_acc": []}
    best: tuple[tuple[float, float], float, float, float] | None = None
    for alpha in trainer.cfg.wise.alphas:
        method.set_ensemble(model, origin, finetuned, alpha)
        val_logits, val_labels = trainer.predict("val")
        test_logits, test_labels = trainer.predict("test")
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
    method.set_ensemble(model, origin, finetuned, alpha)
    transfer = transfer_metrics(trainer, test_acc)  # base-to-new and retention of the chosen ensemble, if asked
    method.set_ensemble(model, origin, finetuned, 1.0)
    result.metrics.update({f"wise/{key}": value for key, value in transfer.items()})
    result.curves.update(curves)
    result.metrics.update(
        {"wise/best_alpha": alpha, "wise/val_acc_at_best": val_acc, "wise/test_acc_at_best": test_acc}
    )
