"""End-of-trial classification metrics (scikit-learn), returned as data for the tracking layer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support


@dataclass
class Evaluation:
    metrics: dict[str, float]
    per_class: pd.DataFrame
    """One row per class: class, precision, recall, f1, support."""
    confusion: np.ndarray
    """[true, predicted] counts."""


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return float((top == labels[:, None]).any(dim=1).float().mean())


def evaluate_predictions(
    logits: torch.Tensor, labels: torch.Tensor, classnames: list[str], prefix: str = "test"
) -> Evaluation:
    logits, labels = logits.float().cpu(), labels.cpu()
    predicted = logits.argmax(dim=1).numpy()
    truth = labels.numpy()
    classes = list(range(len(classnames)))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=classes, zero_division=0)
    per_class = pd.DataFrame(
        {"class": classnames, "precision": precision, "recall": recall, "f1": f1, "support": support}
    )
    metrics = {
        f"{prefix}/acc": float((predicted == truth).mean()),
        f"{prefix}/acc5": topk_accuracy(logits, labels, 5),
        f"{prefix}/macro_f1": float(f1_score(truth, predicted, labels=classes, average="macro", zero_division=0)),
        f"{prefix}/loss": float(torch.nn.functional.cross_entropy(logits, labels)),
    }
    return Evaluation(metrics, per_class, confusion_matrix(truth, predicted, labels=classes))


def confusion_frame(confusion: np.ndarray, classnames: list[str]) -> pd.DataFrame:
    """The confusion matrix labelled by class (rows: true, columns: predicted)."""
    return pd.DataFrame(confusion, index=pd.Index(classnames, name="true"), columns=classnames)
