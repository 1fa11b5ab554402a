"""Loss terms between image features and class-prompt text embeddings, as pure functions.

Every function takes raw (unnormalised) image features [B, D] and the text embedding of each image's
class [B, D], row i pairing image i with the prompt of its label: the similarity s(I_i, T_j) is the cosine
times `scale` (CLIP's 1/τ). Batch sums in the papers' equations are batch means here, so that the
weights do not depend on the batch size. Everything is computed in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def similarities(image: torch.Tensor, text: torch.Tensor, scale: float) -> torch.Tensor:
    """[B, B] scaled cosine similarities: entry (i, j) = scale · cos(image_i, text_j)."""
    image = F.normalize(image.float(), dim=-1)
    text = F.normalize(text.float(), dim=-1)
    return scale * image @ text.T


def clip_contrastive(image: torch.Tensor, text: torch.Tensor, scale: float) -> torch.Tensor:
    """CLIP's symmetric InfoNCE (FLYP's fine-tuning loss): each image against every text of the batch and
    back, the mean of both directions. Same-class pairs other than (i, i) count as negatives, as in FLYP."""
    logits = similarities(image, text, scale)
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def supervised_contrastive(image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """CLIP-CITE's SCL (its Eq. 4): image→text plus text→image, where the negatives of pair (i, i) are only
    the pairs of other classes.

    ℓ_i = -log( e^{s_ii} / (e^{s_ii} + Σ_{j: y_j ≠ y_i} e^{s_ij}) ), and likewise with s transposed.
    Eq. 4's indicator drops the texts equal to t_i (same class: with class-level prompts they are the
    same text) from the denominator; the positive itself stays in it, which is what makes SCL reduce to
    FLYP's contrastive loss when a batch holds no two images of one class, as the CLIP-CITE paper notes. Eq. 4 prints no
    minus sign; minimising it as printed would push matching pairs apart, so the log-likelihood is negated.
    """
    logits = similarities(image, text, scale)
    same_class = labels[:, None] == labels[None, :]
    positive = torch.eye(len(labels), dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same_class & ~positive, float("-inf"))
    target = torch.arange(len(logits), device=logits.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)


def similarity_distillation(
    image: torch.Tensor,
    text: torch.Tensor,
    teacher_image: torch.Tensor,
    teacher_text: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """CLIP-CITE's VLD (its Eq. 5): KL divergence between the teacher's and the student's in-batch
    image→text distributions (softmax over the batch's texts of the scaled cosine similarities), mean
    over images.

    Read as knowledge distillation, KL(teacher ‖ student): the student is pulled towards the frozen
    original CLIP's distribution. Zero when student and teacher agree.
    """
    student = F.log_softmax(similarities(image, text, scale), dim=-1)
    teacher = F.log_softmax(similarities(teacher_image, teacher_text, scale), dim=-1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True)
