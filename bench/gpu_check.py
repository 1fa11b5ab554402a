"""The one GPU check: CUDA tests, training throughput against the arithmetic, the speed features, GPU sharing.

On the GPU machine (no Ray, MLflow, open_clip, kornia or pydantic there; bench/gpu_wheels.sh fetches the
wheels beforehand, under 40 MiB):

    bash bench/gpu_wheels.sh                     # here, once: .whl/
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:. python3 bench/gpu_check.py --out gpu_check     # about 6 minutes on one H100/H200

`make device-preflight` (bench/device_preflight.sh) rehearses this here beforehand, in that machine's software.

Without a GPU (or with --smoke) it runs every section at toy size on the CPU in seconds (`make gpu-check`;
tests/bench/test_gpu_check.py runs it), so the script cannot rot. It writes gpu_check.json (everything) and
gpu_check.md (the tables and the goals) to --out after every section, so a run cut short keeps what it
measured.

Every training figure goes through the real `Trainer` (random weights: speed does not depend on them) on a
GPU-resident synthetic dataset at 224 px, bf16 autocast, fp32 weights, batch 256: a warm-up epoch (kernel
selection, allocator, compilation), then a timed epoch, synchronised. Utilisation (MFU) divides the analytic
FLOPs (bench/_flops.py) by the elapsed time and by the bf16 dense peak, both measured here (an 8192^3 matrix
product) and from the datasheet (989 TFLOP/s for H100/H200 SXM). The augmentation share is the time CUDA
events put around the train transform and Mixup/CutMix inside the timed epoch, over the epoch's time. The
training cases of the goals run again at batch 8: that step's time over the batch-256 step's is the share of a
step that does not grow with the batch (host work, kernel launches), the part compilation can remove.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import seed000_augment
from _flops import train_flops_per_image, vision_macs

import clipstudy.engine.trainer as trainer_module
from clipstudy.data.base import Source, Split, register_dataset
from clipstudy.data.synthetic import make_synthetic
from clipstudy.data.templates import GENERIC_TEMPLATES
from clipstudy.engine import Trainer
from clipstudy.studyfile import build_config

DATASHEET_TFLOPS = 989.0
"""Dense bf16 peak of an H100/H200 SXM by NVIDIA's datasheet (without sparsity)."""
SEED000_AUGMENT = seed000_augment()
"""studies/cifar100_seed000.yaml's full fine-tuning augmentation, read from the study."""
LORA_AUGMENT = {"augment.crop_scale": [0.08, 1.0], "augment.hflip": 0.5}
"""What a LoRA study usually trains with: RandomResizedCrop and flips."""
BOTH_TOWERS = {"lora.towers": ["vision", "text"], "head.kind": "text"}
"""LoRA on both towers with a text head: the class prompts go through the adapted text tower every step."""
GOALS = {
    "lora_b32_img_s": ("LoRA training, ViT-B/32", 8000.0),
    "full_ft_b32_img_s": ("full fine-tuning, ViT-B/32", 4000.0),
    "extract_b32_img_s": ("feature extraction, ViT-B/32", 20000.0),
}


@dataclass(frozen=True)
class Scale:
    """What the check runs at: the real sizes on a GPU, toy ones in smoke mode."""

    smoke: bool
    archs: tuple[str, ...]
    batch: int
    steps: int
    """Timed steps per training figure."""
    image_size: int
    num_classes: int
    share_seconds: float
    small_batch: int
    """The batch of the fixed-cost figure: small enough that the per-image work is a minor part of its step."""

    @property
    def device(self) -> str:
        return "cpu" if self.smoke else "cuda"


GPU = Scale(False, ("ViT-B-32", "ViT-B-16"), 256, 20, 224, 100, 10.0, 8)
SMOKE = Scale(True, ("clipstudy-tiny",), 16, 3, 32, 10, 1.0, 2)


# ----- data: one synthetic set per size, generated once per process --------------------------------------
@cache
def synthetic_images(num_classes: int, per_class: int, size: int) -> Split:
    """The synthetic set drawn at 32 px and upsampled once (drawing at 224 px costs 25 s on 2 cores)."""
    small = make_synthetic(num_classes, per_class, 32, seed=0)
    if size == 32:
        return small
    device = "cuda" if torch.cuda.is_available() else "cpu"
    images = torch.cat(
        [
            F.interpolate(chunk.to(device).float(), size=(size, size), mode="bilinear", antialias=False)
            .round_()
            .clamp_(0, 255)
            .to(torch.uint8)
            .cpu()
            for chunk in small.images.split(512)
        ]
    )
    return Split(images, small.labels)


@register_dataset("gpu_check", origin="builtin")
def load_gpu_check(cfg, image_size: int) -> Source:
    split = synthetic_images(cfg.num_classes, cfg.samples_per_class, cfg.image_size or image_size)
    return Source([f"class {c}" for c in range(cfg.num_classes)], list(GENERIC_TEMPLATES), split)


def config(scale: Scale, method: str, arch: str, images: int, **overrides: Any):
    """A trial on `images` training images (the synthetic set holds them after its 20% test and 10% val)."""
    per_class = max(4, round(images / scale.num_classes / 0.72) + 1)
    base = {
        "method": method,
        "model.arch": arch,
        "model.pretrained": "none",
        "data.name": "gpu_check",
        "data.num_classes": scale.num_classes,
        "data.samples_per_class": per_class,
        "data.image_size": scale.image_size,
        "data.feature_cache": False,
        "train.epochs": 3,
        "train.batch_size": scale.batch,
        "train.eval_batch_size": scale.batch,
        "train.device": scale.device,
        "train.precision": "fp32" if scale.smoke else "bf16",
    }
    return build_config(base, {key.replace("__", "."): value for key, value in overrides.items()})


# ----- timing --------------------------------------------------------------------------------------------
def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Timed:
    """Wraps a callable and sums its time: CUDA events on a GPU (no host wait), the wall clock on CPU."""

    def __init__(self, fn):
        self.fn, self.events, self.seconds = fn, [], 0.0
        self.cuda = torch.cuda.is_available()

    def __call__(self, *args):
        if not self.cuda:
            start = time.perf_counter()
            out = self.fn(*args)
            self.seconds += time.perf_counter() - start
            return out
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        out = self.fn(*args)
        end.record()
        self.events.append((begin, end))
        return out

    def total(self) -> float:
        synchronize()
        return self.seconds + sum(b.elapsed_time(e) for b, e in self.events) / 1000

    def reset(self) -> None:
        self.events, self.seconds = [], 0.0


@dataclass
class Case:
    name: str
    method: str
    overrides: dict[str, Any] = field(default_factory=dict)
    streamed: bool = False
    """Keep the train split in host memory (as for data larger than the GPU) instead of on the GPU."""
    compiles: bool = False


def training_cases() -> list[Case]:
    lora = {"lora.targets": ["q", "v"], "lora.r": 16}
    cases = [
        Case("lora", "lora", {**lora, **LORA_AUGMENT}),
        Case("lora_both_towers_text_head", "lora", {**lora, **LORA_AUGMENT, **BOTH_TOWERS}),
        Case("full_ft_seed000_augment", "full_ft", dict(SEED000_AUGMENT)),
    ]
    return cases


def feature_cases(scale: Scale) -> list[Case]:
    """The speed features, each against its off switch, on ViT-B/32 (the goals' model)."""
    lora = {"lora.targets": ["q", "v"], "lora.r": 16, **LORA_AUGMENT}
    cases = [
        Case("lora_attention_math", "lora", {**lora, "train.attention": "math"}),
        Case("full_ft_unfused_adamw", "full_ft", {**SEED000_AUGMENT, "train.fused_optimizer": False}),
        Case("lora_streamed_prefetch", "lora", dict(lora), streamed=True),
        Case("lora_streamed_no_prefetch", "lora", {**lora, "train.prefetch": 0}, streamed=True),
    ]
    if not scale.smoke:  # compilation is tested on CPU by tests/engine/test_compilation.py; here it is timed
        full_ft = {**SEED000_AUGMENT, "train.compile": True}
        cases += [
            Case("lora_compiled", "lora", {**lora, "train.compile": True}, compiles=True),
            Case("full_ft_seed000_augment_compiled", "full_ft", full_ft, compiles=True),
        ]
    return cases


def prompts_per_step(trainer: Trainer) -> int:
    """Prompts the text tower encodes every step: a text head over adapted text weights re-encodes them."""
    if trainer.cfg.head.kind != "text" or "text" not in trainer.cfg.lora.towers:
        return 0
    return trainer.data.num_classes * len(trainer.data.templates)


def with_utilisation(row: dict[str, Any], peak_tflops: float | None) -> dict[str, Any]:
    """`row` with its model FLOP utilisation against the measured peak and the datasheet's (GPU only)."""
    if peak_tflops:
        row["mfu_measured_peak"] = row["tflops"] / peak_tflops
        row["mfu_datasheet"] = row["tflops"] / DATASHEET_TFLOPS
    return row


def measure_training(
    case: Case, arch: str, scale: Scale, peak_tflops: float | None, batch: int | None = None
) -> dict[str, Any]:
    batch = batch or scale.batch
    cfg = config(scale, case.method, arch, batch * scale.steps, **case.overrides, train__batch_size=batch)
    previous = trainer_module.GPU_RESIDENT_BYTES
    if case.streamed:
        trainer_module.GPU_RESIDENT_BYTES = 0
    try:
        build_start = time.perf_counter()
        trainer = Trainer(cfg)
        built_s = time.perf_counter() - build_start
    finally:
        trainer_module.GPU_RESIDENT_BYTES = previous
    augment = trainer.train_transform = Timed(trainer.train_transform)
    mix = Timed(trainer.mix)
    mix.active = trainer.mix.active
    trainer.mix = mix
    warm_start = time.perf_counter()
    for epoch in (1, 2):
        trainer._train_epoch(epoch)
    synchronize()
    warm_s = time.perf_counter() - warm_start
    augment.reset()
    mix.reset()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    seen = trainer._train_epoch(3)["_seen"]
    synchronize()
    elapsed = time.perf_counter() - start
    clip = trainer.model.clip
    flops = train_flops_per_image(
        clip, trains_backbone=case.method == "full_ft", batch=batch, prompts_per_step=prompts_per_step(trainer)
    )
    row = {
        "case": case.name,
        "arch": arch,
        "method": case.method,
        "batch": batch,
        "steps": trainer.steps_per_epoch,
        "img_s": seen / elapsed,
        "step_ms": 1e3 * elapsed / trainer.steps_per_epoch,
        "trainable_params": trainer.trainable_params,
        "gflop_per_image": flops / 1e9,
        "tflops": flops * seen / elapsed / 1e12,
        "augment_share": (augment.total() + mix.total()) / elapsed,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "build_s": built_s,
        "warmup_s": warm_s,
        "streamed": case.streamed,
    }
    return with_utilisation(row, peak_tflops)


def measure_fixed_cost(case: Case, full: dict[str, Any], scale: Scale) -> dict[str, Any]:
    """What a step costs that does not grow with the batch: the same case at a small batch, against its step
    at the full batch. Its share of the full step is the time the batch's arithmetic does not explain: the
    host issuing kernels and the kernels' own floor, which compilation (fewer, fused kernels) attacks; a
    small share says the time is in the kernels themselves."""
    small = measure_training(case, full["arch"], scale, None, batch=scale.small_batch)
    return {
        "case": case.name,
        "arch": full["arch"],
        "small_batch": scale.small_batch,
        "small_batch_step_ms": small["step_ms"],
        "batch": full["batch"],
        "step_ms": full["step_ms"],
        "fixed_share": small["step_ms"] / full["step_ms"],
    }


def measure_extraction(arch: str, scale: Scale, peak_tflops: float | None) -> dict[str, Any]:
    """A linear probe's feature extraction: the frozen image tower over a split, through the Trainer's
    evaluator (eval transform, autocast, batches, features gathered on the host)."""
    images = scale.batch * scale.steps * 2
    trainer = Trainer(config(scale, "linear_probe", arch, images))  # encodes its splits: the warm-up
    inputs = trainer.data.train.images
    inputs = inputs.to(trainer.device)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.model.eval()
    synchronize()
    start = time.perf_counter()
    features = trainer.evaluator.encode(trainer.model.features, inputs)
    elapsed = time.perf_counter() - start
    flops = 2 * vision_macs(trainer.model.clip)
    row = {
        "case": "linear_probe_feature_extraction",
        "arch": arch,
        "method": "linear_probe",
        "batch": scale.batch,
        "steps": -(-len(inputs) // scale.batch),
        "img_s": len(features) / elapsed,
        "trainable_params": 0,
        "gflop_per_image": flops / 1e9,
        "tflops": flops * len(features) / elapsed / 1e12,
        "augment_share": 0.0,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "streamed": False,
    }
    return with_utilisation(row, peak_tflops)


@contextlib.contextmanager
def sync_counter():
    """Collects the host synchronisations CUDA's sync debug mode reports inside the block."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode("default")
    found.extend(str(w.message).splitlines()[0] for w in caught if "called a synchronizing" in str(w.message))


AUGMENT_OPS = {
    "hflip": {"hflip": 0.5},
    "color_jitter+hue": {"color_jitter": 0.2, "hue": 0.1},
    "rotation+translate": {"rotation": 15, "translate": 0.1},
    "crop": {"crop_scale": (0.8, 1.0)},
    "erasing": {"erasing": 0.5},
}


def count_syncs(arch: str, scale: Scale) -> dict[str, Any]:
    """Host synchronisations in one epoch of full fine-tuning with the seed-000 augmentation and Mixup/CutMix,
    and in one call of each augmentation op, as CUDA's sync debug mode reports them."""
    if scale.smoke:
        return {"skipped": "no CUDA device"}
    from clipstudy.config import AugmentConfig
    from clipstudy.data.augment import MixBatch, build_train_transform

    trainer = Trainer(config(scale, "full_ft", arch, scale.batch * scale.steps, **SEED000_AUGMENT))
    trainer._train_epoch(1)
    synchronize()
    with sync_counter() as syncs:
        trainer._train_epoch(2)
    per_op = {}
    x = trainer.data.train.images[: scale.batch].cuda()
    for name, ops in AUGMENT_OPS.items():
        transform = build_train_transform(AugmentConfig(**ops), 224, (0.5,) * 3, (0.5,) * 3).cuda()
        transform(x)
        with sync_counter() as found:
            transform(x)
        per_op[name] = len(found)
    mix = MixBatch(AugmentConfig(mixup_alpha=0.2, cutmix_alpha=1.0, mix_prob=1.0), 100)
    labels = torch.zeros(len(x), dtype=torch.long, device="cuda")
    with sync_counter() as found:
        for _ in range(4):
            mix(x.float(), labels)
    per_op["mixup/cutmix (4 batches)"] = len(found)
    return {
        "steps": trainer.steps_per_epoch,
        "syncs_in_epoch": len(syncs),
        "per_augment_op": per_op,
        "first": syncs[:3],
    }


def peak_matmul_tflops() -> float | None:
    """bf16 8192^3 matrix products: the mean of 10 after 3 warm-ups (None on CPU)."""
    if not torch.cuda.is_available():
        return None
    a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    synchronize()
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    synchronize()
    return 10 * 2 * 8192**3 / (time.perf_counter() - start) / 1e12


# ----- two trials sharing the GPU --------------------------------------------------------------------------
def share_worker(args: argparse.Namespace) -> None:
    """One trial of the sharing measurement: half the GPU's memory, warm up, wait for the others, then count
    images over `share_seconds`; prints a JSON line."""
    scale = SMOKE if args.smoke else GPU
    if torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(1 / args.share_of)
    arch = scale.archs[0]
    cfg = config(scale, "lora", arch, scale.batch * scale.steps, **{"lora.targets": ["q", "v"]}, **LORA_AUGMENT)
    trainer = Trainer(cfg)
    trainer._train_epoch(1)
    synchronize()
    ready = Path(args.share_ready)
    (ready / f"{os.getpid()}.ready").touch()
    deadline = time.time() + 120
    while len(list(ready.glob("*.ready"))) < args.share_of and time.time() < deadline:
        time.sleep(0.05)
    seen, epoch, start = 0, 2, time.perf_counter()
    while time.perf_counter() - start < scale.share_seconds:
        seen += trainer._train_epoch(epoch)["_seen"]
        epoch += 1
    synchronize()
    print(json.dumps({"img_s": seen / (time.perf_counter() - start)}), flush=True)


def run_sharing(folder: Path, smoke: bool, trials: int) -> list[float]:
    ready = folder / f"ready-{trials}"
    ready.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--share-worker", "--share-of", str(trials), "--share-ready", str(ready)]
    if smoke:
        command.append("--smoke")
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(trials)]
    rates = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        if proc.returncode:
            raise RuntimeError(f"a sharing worker exited with {proc.returncode}")
        rates.append(json.loads(out.strip().splitlines()[-1])["img_s"])
    return rates


@contextlib.contextmanager
def mps_daemon():
    """CUDA's Multi-Process Service for the block (kernels of several processes then run at once instead of
    taking turns); raises where the machine has no MPS control binary."""
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        raise RuntimeError("no nvidia-cuda-mps-control on this machine")
    folder = Path(tempfile.mkdtemp(prefix="gpu_check_mps_"))
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"), "CUDA_MPS_LOG_DIRECTORY": str(folder / "log")}
    for path in env.values():
        Path(path).mkdir()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        subprocess.run([control, "-d"], check=True, timeout=30)
        time.sleep(1)
        yield
    finally:
        subprocess.run([control], input="quit\n", text=True, timeout=30, check=False)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def measure_sharing_mps(smoke: bool, alone: float) -> dict[str, Any]:
    """The pair again under MPS, against the same trial alone without it."""
    if smoke:
        return {"skipped": "no CUDA device"}
    folder = Path(tempfile.mkdtemp(prefix="gpu_check_share_mps_"))
    with mps_daemon():
        pair = run_sharing(folder, smoke, 2)
    return {"alone_img_s": alone, "pair_img_s": pair, "total_over_alone": sum(pair) / alone}


def measure_sharing(smoke: bool) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="gpu_check_share_"))
    alone = run_sharing(folder, smoke, 1)[0]
    pair = run_sharing(folder, smoke, 2)
    return {"alone_img_s": alone, "pair_img_s": pair, "total_over_alone": sum(pair) / alone}


# ----- CUDA tests ----------------------------------------------------------------------------------------------
def cuda_tests(smoke: bool) -> dict[str, Any]:
    if smoke:
        return {"skipped": "no CUDA device (make test runs these modules; their GPU tests skip)"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/engine",
        "tests/data",
        "tests/models",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[1])
    tail = done.stdout.strip().splitlines()[-15:]
    return {
        "returncode": done.returncode,
        "seconds": time.perf_counter() - start,
        "summary": tail[-1] if tail else "",
        "tail": tail,
    }


# ----- the machine and the report ----------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in ("open_clip_torch", "timm", "peft", "kornia", "pydantic", "torchvision", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            packages[name] = version(name)
    info: dict[str, Any] = {
        "packages": packages,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpus": os.cpu_count(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name, memory_gib=round(props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count
        )
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            info["driver"] = subprocess.run(query, capture_output=True, text=True, timeout=20).stdout.strip()
    else:
        info["gpu"] = None
    return info


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = {(r["case"], r["arch"]): r for r in report.get("training", [])}
    measured = {
        "lora_b32_img_s": rows.get(("lora", "ViT-B-32"), {}).get("img_s"),
        "full_ft_b32_img_s": rows.get(("full_ft_seed000_augment", "ViT-B-32"), {}).get("img_s"),
        "extract_b32_img_s": rows.get(("linear_probe_feature_extraction", "ViT-B-32"), {}).get("img_s"),
    }
    out = [
        {
            "goal": GOALS[k][0],
            "target": f">= {GOALS[k][1]:,.0f} img/s",
            "measured": v,
            "met": None if v is None else v >= GOALS[k][1],
        }
        for k, v in measured.items()
    ]
    lora = rows.get(("lora", "ViT-B-32"))
    share = lora["augment_share"] if lora else None
    out.append(
        {
            "goal": "augmentation share of a LoRA step (crop + flip)",
            "target": "< 10%",
            "measured": share,
            "met": None if share is None else share < 0.10,
        }
    )
    ratio = report.get("sharing", {}).get("total_over_alone")
    out.append(
        {
            "goal": "two trials sharing the GPU, total over one alone",
            "target": ">= 1.3x",
            "measured": ratio,
            "met": None if ratio is None else ratio >= 1.3,
        }
    )
    return out


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# GPU check" + (" (smoke mode: tiny model, CPU)" if report["smoke"] else ""),
        "",
        f"Machine: {m.get('gpu') or 'no GPU'}, driver {m.get('driver', '-')}, CUDA {m.get('cuda')}, "
        f"torch {m['torch']}, Python {m['python']}, {m['cpus']} CPUs. "
        f"bf16 matmul peak measured: {report.get('peak_tflops') or 0:.0f} TFLOP/s (datasheet {DATASHEET_TFLOPS:.0f}).",
        "",
        "## Goals",
        "",
        "| goal | target | measured | met |",
        "|---|---|---|---|",
    ]
    for g in goals(report):
        value = g["measured"]
        shown = (
            "-"
            if value is None
            else f"{value:.1%}"
            if "share" in g["goal"]
            else (f"{value:.2f}x" if "sharing" in g["goal"] else f"{value:,.0f} img/s")
        )
        lines.append(
            f"| {g['goal']} | {g['target']} | {shown} | {'-' if g['met'] is None else 'yes' if g['met'] else 'NO'} |"
        )
    lines += [
        "",
        f"## Throughput (steady state, batch {report['scale']['batch']})",
        "",
        "| arch | case | img/s | GFLOP/img | TFLOP/s | MFU (measured peak) | MFU (datasheet) | augment share "
        "| peak GiB | trainable params | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.get("training", []) + report.get("features", []):
        if "error" in r:
            lines.append(f"| {r['arch']} | {r['case']} | error: {r['error']} |||||||||")
            continue
        mem = "-" if r.get("peak_mem_gib") is None else f"{r['peak_mem_gib']:.1f}"
        lines.append(
            f"| {r['arch']} | {r['case']} | {r['img_s']:,.0f} | {r['gflop_per_image']:.3g} | {r['tflops']:.3g} | "
            f"{r.get('mfu_measured_peak', 0):.1%} | {r.get('mfu_datasheet', 0):.1%} | {r['augment_share']:.1%} | {mem} "
            f"| {r['trainable_params']:,} | {r.get('warmup_s', 0):.1f} |"
        )
    if report.get("fixed_cost"):
        lines += [
            "",
            "## Per-step cost that does not grow with the batch",
            "",
            "The same case at a small batch: its step time over the full batch's is the share of the step that the "
            "batch's arithmetic does not explain (kernel launches, host work, kernel floors).",
            "",
            "| arch | case | small batch | its step ms | batch | step ms | share of the step |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in report["fixed_cost"]:
            if "error" in r:
                lines.append(f"| {r['arch']} | {r['case']} | error: {r['error']} |||||")
                continue
            lines.append(
                f"| {r['arch']} | {r['case']} | {r['small_batch']} | {r['small_batch_step_ms']:.1f} | {r['batch']} | "
                f"{r['step_ms']:.1f} | {r['fixed_share']:.0%} |"
            )
    for title, key in (
        ("Host synchronisations (an epoch of full FT + seed-000 augmentation; each op)", "syncs"),
        ("GPU sharing", "sharing"),
        ("GPU sharing under MPS", "sharing_mps"),
        ("CUDA tests", "cuda_tests"),
    ):
        if key in report:
            lines += ["", f"## {title}", "", "```", json.dumps(report[key], indent=1), "```"]
    if report.get("skipped"):
        lines += ["", "## Skipped (out of time)", "", *[f"- {s}" for s in report["skipped"]]]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "gpu_check.md").write_text(markdown(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu_check"))
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU (the default without a GPU)")
    parser.add_argument("--budget-s", type=float, default=340.0, help="skip what would not finish within this")
    parser.add_argument("--share-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--share-of", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--share-ready", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.smoke = args.smoke or not torch.cuda.is_available()
    if args.share_worker:
        share_worker(args)
        return
    scale = SMOKE if args.smoke else GPU
    began = time.perf_counter()
    report: dict[str, Any] = {
        "smoke": args.smoke,
        "machine": machine(),
        "scale": scale.__dict__ | {"device": scale.device},
        "training": [],
        "features": [],
        "skipped": [],
    }
    report["peak_tflops"] = peak_matmul_tflops()
    write(report, args.out)

    def attempt(label: str, cost_s: float, fn, *fn_args):
        """Run one measurement unless the budget is spent; an error is recorded, not raised."""
        if time.perf_counter() - began + cost_s > args.budget_s:
            report["skipped"].append(label)
            return None
        print(f"[gpu_check {time.perf_counter() - began:5.0f}s] {label}", flush=True)
        try:
            return fn(*fn_args)
        except Exception as error:  # a failed case is a finding of the check, not the end of it
            return {"error": f"{type(error).__name__}: {error}"[:300]}

    peak, first = report["peak_tflops"], scale.archs[0]

    def keep(section: str, label: str, row: dict[str, Any] | None) -> None:
        if row is not None:
            report[section].append({"case": label, "arch": row.get("arch", first), **row})
            write(report, args.out)

    # the goals' figures first, so a run cut short still answers them; then the features and the rest
    for arch in scale.archs:
        for case in training_cases():
            keep("training", case.name, attempt(f"{arch} {case.name}", 25, measure_training, case, arch, scale, peak))
        keep(
            "training",
            "linear_probe_feature_extraction",
            attempt(f"{arch} feature extraction", 20, measure_extraction, arch, scale, peak),
        )
    for label, key, cost, fn, fn_args in (
        ("host synchronisations", "syncs", 20, count_syncs, (first, scale)),
        ("two trials sharing the GPU", "sharing", 90, measure_sharing, (args.smoke,)),
    ):
        result = attempt(label, cost, fn, *fn_args)
        if result is not None:
            report[key] = result
            write(report, args.out)
    cases = feature_cases(scale)
    for case in [c for c in cases if not c.compiles]:
        keep("features", case.name, attempt(f"{first} {case.name}", 20, measure_training, case, first, scale, peak))
    tests = attempt("CUDA tests (pytest -m gpu)", 100, cuda_tests, args.smoke)
    if tests is not None:
        report["cuda_tests"] = tests
        write(report, args.out)
    for case in [c for c in cases if c.compiles]:
        keep("features", case.name, attempt(f"{first} {case.name}", 80, measure_training, case, first, scale, peak))
    measured = {(r["case"], r["arch"]): r for r in report["training"] if "step_ms" in r}
    for case in training_cases():
        full = measured.get((case.name, first))
        if full is not None:
            label = f"{first} {case.name} at batch {scale.small_batch}"
            row = attempt(label, 15, measure_fixed_cost, case, full, scale)
            if row is not None:
                report.setdefault("fixed_cost", []).append(row)
                write(report, args.out)
    alone = report.get("sharing", {}).get("alone_img_s")
    if alone and not args.smoke:
        mps = attempt("two trials sharing the GPU under MPS", 60, measure_sharing_mps, args.smoke, alone)
        if mps is not None:
            report["sharing_mps"] = mps
    report["seconds"] = time.perf_counter() - began
    write(report, args.out)
    print(markdown(report))


if __name__ == "__main__":
    main()
