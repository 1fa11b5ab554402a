"""WiSE-FT interpolation: exact at both ends."""

import pytest
import torch

from clipstudy.methods.wise import interpolate


def weights(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "a": torch.randn(64, 32, generator=generator) * 1e3,
        "b": torch.randn(7, generator=generator) * 1e-4,
    }


def test_alpha_zero_is_the_origin_and_alpha_one_the_fine_tuned_weights_exactly():
    origin, finetuned = weights(0), weights(1)
    at_zero, at_one = interpolate(origin, finetuned, 0.0), interpolate(origin, finetuned, 1.0)
    for name in origin:
        assert torch.equal(at_zero[name], origin[name])
        assert torch.equal(at_one[name], finetuned[name])


def test_alpha_between_is_the_weighted_average():
    origin, finetuned = weights(0), weights(1)
    mixed = interpolate(origin, finetuned, 0.3)
    for name in origin:
        expected = 0.7 * origin[name].double() + 0.3 * finetuned[name].double()
        torch.testing.assert_close(mixed[name].double(), expected, rtol=1e-6, atol=1e-4)


def test_bad_alpha_or_missing_weights_fail():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate(weights(0), weights(1), 1.5)
    with pytest.raises(KeyError, match="no fine-tuned weights"):
        interpolate(weights(0), {"a": torch.zeros(64, 32)}, 0.5)
