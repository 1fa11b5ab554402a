"""CLIP-CITE (Liu, Li and Yu 2024, "Fully Fine-tuned CLIP Models are Efficient Few-Shot Learners"): full
fine-tuning of both towers with L = DVA + λ·SCL + η·VLD (Eq. 6).

DVA (Eq. 2-3) is the cross-entropy of the cosine classifier over the class prompts' live text embeddings;
SCL (Eq. 4) and VLD (Eq. 5) are `loss.scl_weight` and `loss.vld_weight`, the teacher of VLD a frozen copy
of the original model. The paper trains every weight ("ALL", its best variant in Fig. 4), as here. Its
inference-time weight ensemble (Eq. 7, WiSE-FT) is `wise.enabled`.
"""

from __future__ import annotations

from typing import ClassVar

from clipstudy.methods.base import BuildContext, Method
from clipstudy.methods.flyp import build_both_towers
from clipstudy.methods.registry import METHODS
from clipstudy.models.classifier import ImageClassifier


@METHODS.register("clip_cite")
class ClipCite(Method):
    name = "clip_cite"
    description = "both towers; DVA (text classifier CE) + λ·SCL + η·VLD from frozen CLIP (λ=0.7, η=0.1)"
    reads = ("tokens",)
    loss_defaults: ClassVar[dict[str, float]] = {"ce_weight": 1.0, "scl_weight": 0.7, "vld_weight": 0.1}
    """The paper's λ = 0.7 and η = 0.1."""

    def build(self, ctx: BuildContext) -> ImageClassifier:
        return build_both_towers(ctx)
