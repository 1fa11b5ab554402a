"""Device, precision, seeds and RNG state, the distributed world and peak memory (engine.runtime)."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import pytest
import torch

from clipstudy.engine.runtime import (
    AUTOCAST_DTYPES,
    PRECISION_NAMES,
    autocast,
    device_name,
    epoch_seed,
    peak_memory_mb,
    resolve_device,
    resolve_precision,
    rng_state,
    seed_everything,
    set_rng_state,
    world,
)
from clipstudy.errors import ConfigError

CPU = torch.device("cpu")


def draws() -> tuple[float, float, torch.Tensor]:
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_the_precision_table_names_every_autocast_dtype_once():
    assert {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16} == AUTOCAST_DTYPES
    assert {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"} == PRECISION_NAMES
    for name, dtype in AUTOCAST_DTYPES.items():
        assert resolve_precision(name, CPU) is dtype
        assert PRECISION_NAMES[dtype] == name


def test_auto_precision_is_fp32_on_cpu():
    assert resolve_precision("auto", CPU) is None


def test_autocast_casts_to_the_dtype_and_not_at_all_for_fp32():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    assert isinstance(autocast(CPU, None), contextlib.nullcontext)
    with autocast(CPU, None):
        assert (a @ b).dtype == torch.float32
    with autocast(CPU, torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16


def test_device_resolution():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert device_name(CPU) == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible")
def test_cuda_without_a_gpu_is_a_config_error():
    with pytest.raises(ConfigError, match=r"train.device=cuda but no CUDA device is visible"):
        resolve_device("cuda")


def test_same_seed_same_draws_in_python_numpy_and_torch():
    seed_everything(7)
    first = draws()
    seed_everything(7)
    second = draws()
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])
    seed_everything(8)
    assert draws()[0] != first[0]


def test_epoch_seeds_depend_on_seed_and_epoch_only():
    seeds = {epoch_seed(seed, epoch) for seed in range(3) for epoch in range(50)}
    assert len(seeds) == 150 and all(0 <= s < 2**63 for s in seeds)
    assert epoch_seed(2**62, 3) == epoch_seed(2**62, 3) < 2**63


def test_rng_state_round_trip_replays_the_same_draws():
    seed_everything(0)
    draws()
    state = rng_state()
    after = draws()
    draws()
    set_rng_state(state)
    replayed = draws()
    assert after[:2] == replayed[:2] and torch.equal(after[2], replayed[2])


def test_outside_a_process_group_the_world_is_one_rank():
    assert world() == (0, 1)


def test_peak_memory_on_cpu_is_the_resident_peak():
    assert peak_memory_mb(CPU) > 1.0  # MiB: a Python process with torch loaded holds far more


def test_math_attention_computes_what_the_fused_kernels_do():
    """train.attention: math restricts scaled_dot_product_attention to the reference kernel; same outputs."""
    from clipstudy.engine.runtime import compute

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 16) for _ in range(3))
    outputs = []
    for name in ("auto", "math"):
        with compute(torch.device("cpu"), None, name):
            outputs.append(torch.nn.functional.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)
