"""Where and how a trial runs, apart from the loop: device, precision, seeds and RNG state, the distributed
world and peak memory (as torchtune keeps `training/precision.py`, `seed.py` and `memory.py` beside its recipes).
"""

from __future__ import annotations

import contextlib
import random
import resource
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from clipstudy.errors import ConfigError

AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""`train.precision` -> the autocast dtype (None: no autocast)."""
PRECISION_NAMES = {dtype: name for name, dtype in AUTOCAST_DTYPES.items()}
WEIGHT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
"""`model.weights_dtype` -> the dtype the backbone's weights are held in."""


def resolve_device(name: str) -> torch.device:
    """`train.device`: `auto` is CUDA when a GPU is visible, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but no CUDA device is visible; use train.device: auto or cpu")
    return device


def device_name(device: torch.device) -> str:
    """`cpu`, or `cuda` with the GPU's model (what time, throughput and memory were measured on)."""
    if device.type != "cuda":
        return device.type
    return f"cuda ({torch.cuda.get_device_name(device)})"


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `train.precision`, or None for fp32; `auto` is bf16 on a GPU that has it."""
    if name == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    return AUTOCAST_DTYPES[name]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device`'s type; no autocast for None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def attention_kernels(name: str) -> contextlib.AbstractContextManager:
    """`train.attention`: auto lets scaled_dot_product_attention pick flash or memory-efficient kernels where
    the inputs allow; math restricts it to the reference implementation."""
    if name == "math":
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


@contextlib.contextmanager
def compute(device: torch.device, dtype: torch.dtype | None, attention: str = "auto"):
    """Where a forward pass runs: under the trial's autocast and attention kernels."""
    with autocast(device, dtype), attention_kernels(attention):
        yield


def hold_weights_in(backbone: nn.Module, name: str) -> None:
    """Cast the backbone's floating-point weights and buffers to `model.weights_dtype`, in place; LoRA
    adapters (peft's `lora_*` modules) stay fp32, as peft keeps them.

    The optimizer then updates the low-precision weights themselves (no fp32 master copy), as fine-tuning
    OpenAI's `clip.load` model on CUDA does: an update below the dtype's resolution is lost. The image
    tower casts its input to the dtype, so every caller of `encode_image` (the classifier, the transfer
    evaluation) can pass fp32 images without autocast.
    """
    dtype = WEIGHT_DTYPES[name]
    if dtype == torch.float32:
        return
    for module_name, module in backbone.named_modules():
        if any(part.startswith("lora_") for part in module_name.split(".")):
            continue
        for param in module.parameters(recurse=False):
            if param.is_floating_point():
                param.data = param.data.to(dtype)
        for key, buffer in module.named_buffers(recurse=False):
            if buffer.is_floating_point():
                setattr(module, key, buffer.to(dtype))
    backbone.visual.register_forward_pre_hook(partial(_cast_input, dtype=dtype))


def _cast_input(module: nn.Module, args: tuple[Any, ...], dtype: torch.dtype) -> tuple[Any, ...]:
    return (args[0].to(dtype), *args[1:]) if args and torch.is_tensor(args[0]) else args


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: a function of (train.seed, epoch) only, so a resumed run reseeds as an
    uninterrupted one does."""
    return (seed * 100_003 + epoch) % 2**63


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's, torch's and (where present) every CUDA device's RNG state, for a checkpoint.

    Tensors and plain numbers only, so the checkpoint loads with `torch.load(weights_only=True)`.
    """
    version, mersenne, gauss = random.getstate()
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state = {
        "python": {"version": version, "state": torch.tensor(mersenne, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, numpy["position"], numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def world() -> tuple[int, int]:
    """(rank, world size) of the torch.distributed group Ray Train set up, or (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak for `peak_memory_mb` on a GPU (the CPU figure is the process's peak so far)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """The GPU's peak allocated memory since the last reset, or the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
