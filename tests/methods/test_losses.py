"""The loss terms against hand computations (seed 004's Eq. 4 and 5, CLIP's contrastive loss)."""

import math

import pytest
import torch
import torch.nn.functional as F

from clipstudy.methods.losses import clip_contrastive, similarity_distillation, supervised_contrastive


def unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def nll(positive: float, negatives: list[float]) -> float:
    """-log(e^pos / (e^pos + Σ e^neg))."""
    return -math.log(math.exp(positive) / (math.exp(positive) + sum(math.exp(n) for n in negatives)))


def test_scl_matches_a_hand_computation_on_four_samples():
    # Images at 0°, 60°, 90°, 180°; class texts at 0°, 90°, 180°; two images of class 0. With scale 2,
    # s(I_i, T_c) = 2·cos(angle between them).
    image = torch.tensor([unit(0), unit(60), unit(90), unit(180)]) * torch.tensor([[1.0], [3.0], [0.5], [2.0]])
    labels = torch.tensor([0, 0, 1, 2])
    class_text = torch.tensor([unit(0), unit(90), unit(180)])
    root3 = math.sqrt(3)
    # image -> text: the positive, then the texts of the other classes in the batch (sample 1's text is
    # sample 0's, the same class, so it is neither positive nor negative for sample 0, and vice versa).
    image_to_text = [
        nll(2, [0, -2]),  # I0 (0°): T1 at 90°, T2 at 180°
        nll(1, [root3, -1]),  # I1 (60°): cos 60° = 1/2; T1 at 30° away, T2 at 120°
        nll(2, [0, 0, 0]),  # I2 (90°): T0 twice (samples 0, 1), T2
        nll(2, [-2, -2, 0]),  # I3 (180°): T0 twice, T1
    ]
    # text -> image: the text of sample i against the images of other classes.
    text_to_image = [
        nll(2, [0, -2]),  # T0 vs I0; negatives I2 (90°), I3 (180°)
        nll(1, [0, -2]),  # T0 vs I1 (60°); same negatives
        nll(2, [0, root3, 0]),  # T1 (90°) vs I2; negatives I0, I1 (30° away), I3
        nll(2, [-2, -1, 0]),  # T2 (180°) vs I3; negatives I0, I1 (120°), I2
    ]
    expected = sum(image_to_text) / 4 + sum(text_to_image) / 4
    got = supervised_contrastive(image, class_text[labels], labels, scale=2.0)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_scl_without_same_class_pairs_is_flyp_twice():
    """004: SCL is FLYP's contrastive loss when no two images of the batch share a class (ours sums the two
    directions, CLIP's averages them)."""
    torch.manual_seed(0)
    image, text = torch.randn(6, 8), torch.randn(6, 8)
    labels = torch.arange(6)
    scl = supervised_contrastive(image, text, labels, scale=10.0)
    assert scl.item() == pytest.approx(2 * clip_contrastive(image, text, scale=10.0).item(), rel=1e-6)


def test_clip_contrastive_matches_a_hand_computation():
    image = torch.tensor([unit(0), unit(90)])
    text = torch.tensor([unit(0), unit(60)])
    # s = 3·cos: I0·T0 = 3, I0·T1 = 1.5, I1·T0 = 0, I1·T1 = 3·cos 30°.
    s01, s11 = 1.5, 3 * math.cos(math.radians(30))
    image_to_text = (nll(3, [s01]) + nll(s11, [0])) / 2
    text_to_image = (nll(3, [0]) + nll(s11, [s01])) / 2
    got = clip_contrastive(image, text, scale=3.0)
    assert got.item() == pytest.approx((image_to_text + text_to_image) / 2, rel=1e-6)


def test_vld_is_zero_when_student_equals_teacher():
    torch.manual_seed(0)
    image, text = torch.randn(5, 16), torch.randn(5, 16)
    assert similarity_distillation(image, text, image.clone(), text.clone(), scale=100.0).item() == 0.0


def test_vld_is_the_teachers_kl_to_the_student():
    torch.manual_seed(1)
    image, text, teacher_image, teacher_text = (torch.randn(4, 8) for _ in range(4))
    scale = 5.0
    student = F.softmax(scale * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T, dim=-1)
    teacher = F.softmax(scale * F.normalize(teacher_image, dim=-1) @ F.normalize(teacher_text, dim=-1).T, dim=-1)
    expected = float((teacher * (teacher.log() - student.log())).sum() / 4)
    got = similarity_distillation(image, text, teacher_image, teacher_text, scale).item()
    assert got == pytest.approx(expected, rel=1e-5)
    assert got > 0
