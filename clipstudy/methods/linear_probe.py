"""Linear probe: a head on frozen image features, trained by the engine or by L-BFGS (the CLIP paper,
Radford et al. 2021)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from clipstudy.config import TrialConfig
from clipstudy.errors import ConfigError
from clipstudy.methods.base import BuildContext, Method, image_feature_dim, make_head
from clipstudy.methods.registry import METHODS
from clipstudy.models.classifier import ImageClassifier
from clipstudy.models.heads import LinearHead


@METHODS.register("linear_probe")
class LinearProbe(Method):
    name = "linear_probe"
    description = "frozen backbone, trained head (features cached when there is no augmentation)"
    frozen_backbone = True
    image_only = True
    reads = ("head", "probe")

    def build(self, ctx: BuildContext) -> ImageClassifier:
        if ctx.cfg.probe.solver == "logreg":
            check_logreg(ctx.cfg)
        clip = ctx.built.model.requires_grad_(False)
        return ImageClassifier(clip, make_head(ctx, image_feature_dim(clip)))

    def closed_form(self, cfg: TrialConfig) -> bool:
        return cfg.probe.solver == "logreg"

    def solve(self, model: ImageClassifier, train, val, cfg: TrialConfig) -> dict[str, float]:
        return fit_logreg(model.head, train, val, cfg)


def check_logreg(cfg: TrialConfig) -> None:
    if cfg.head.kind != "linear":
        raise ConfigError(f"probe.solver=logreg fits a linear head; set head.kind: linear (got '{cfg.head.kind}')")
    if cfg.augment.image_ops or cfg.augment.mixing:
        raise ConfigError(
            "probe.solver=logreg fits fixed features; turn augmentation off (augment.*) or use probe.solver: head"
        )


def fit_logreg(head: LinearHead, train, val, cfg: TrialConfig) -> dict[str, float]:
    """Sweep C of an L-BFGS logistic regression, keep the best on validation, load it into `head`."""
    from sklearn.linear_model import LogisticRegression

    def prepare(features: torch.Tensor) -> np.ndarray:
        features = F.normalize(features, dim=-1) if head.normalize else features
        return features.float().cpu().numpy()

    x_train, y_train = prepare(train[0]), train[1].cpu().numpy()
    x_val, y_val = prepare(val[0]), val[1].cpu().numpy()
    results: dict[str, float] = {}
    best = None
    for c in cfg.probe.c_grid:
        clf = LogisticRegression(C=c, max_iter=cfg.probe.max_iter)
        clf.fit(x_train, y_train)
        acc = float(clf.score(x_val, y_val))
        results[f"probe/val_acc_C_{c:g}"] = acc
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    _, c, clf = best
    load_logreg(head, clf.coef_, clf.intercept_, len(head.fc.bias))
    results["probe/best_C"] = float(c)
    return results


def load_logreg(head: LinearHead, coef: np.ndarray, intercept: np.ndarray, num_classes: int) -> None:
    """Copy sklearn's weights into the head; binary problems have one row (class 1 vs a zero class 0)."""
    if coef.shape[0] == 1 and num_classes == 2:
        coef = np.concatenate([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros_like(intercept), intercept])
    with torch.no_grad():
        head.fc.weight.copy_(torch.as_tensor(coef, dtype=head.fc.weight.dtype))
        head.fc.bias.copy_(torch.as_tensor(intercept, dtype=head.fc.bias.dtype))
