"""THE training and evaluation loop. Every method runs through it; methods only supply what differs.

Per epoch it reports train/val loss and accuracy, lr, epoch time, throughput and peak memory;
epoch 0 is the model before any training. Randomness is reseeded from (train.seed, epoch) at the
start of every epoch, so a run resumed from an epoch checkpoint continues exactly as an
uninterrupted one would.
"""

from __future__ import annotations

import os
import pickle
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F

from clipstudy.config import TrialConfig
from clipstudy.data import DataBundle, load_dataset
from clipstudy.data.augment import MixBatch, build_eval_transform, build_train_transform, resolve_interpolation
from clipstudy.data.base import store_size
from clipstudy.data.feature_cache import FeatureCache
from clipstudy.engine.compilation import compile_towers
from clipstudy.engine.evaluator import Evaluator
from clipstudy.engine.metrics import evaluate_predictions
from clipstudy.engine.optim import build_optimizer, build_scheduler
from clipstudy.engine.runtime import (
    PRECISION_NAMES,
    compute,
    device_name,
    epoch_seed,
    hold_weights_in,
    peak_memory_mb,
    reset_peak_memory,
    resolve_device,
    resolve_precision,
    rng_state,
    seed_everything,
    set_rng_state,
    world,
)
from clipstudy.engine.streaming import BatchStream
from clipstudy.engine.transfer import open_transfer_sets, transfer_metrics
from clipstudy.engine.weight_ensemble import weight_ensemble_curve
from clipstudy.errors import ConfigError, TrialFailed
from clipstudy.methods import METHODS, BuildContext, Method
from clipstudy.methods.objective import apply_token_masking, build_objective
from clipstudy.models.build import build_model

GPU_RESIDENT_BYTES = 4 << 30
"""Decoded datasets up to this size are moved to the GPU whole; larger ones stream from host memory."""
FINITE_CHECK_EVERY = 25


class Callback:
    """Hooks for the study runner and the CLI. Returning True from `on_epoch_end` stops training."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, epoch: int, step: int, steps: int) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> bool | None: ...


@dataclass
class TrialResult:
    config: TrialConfig
    history: list[dict[str, float]]
    """One dict per epoch, epoch 0 first (before training)."""
    metrics: dict[str, float]
    """Final: test/acc, test/acc5, test/macro_f1, test/loss, best_epoch, best val, parameter counts."""
    per_class: pd.DataFrame
    confusion: np.ndarray
    classnames: list[str]
    weights: dict[str, torch.Tensor] = field(repr=False)
    """The trainable weights of the tested model (head, adapters or fine-tuned backbone), on CPU."""
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """Series with their own steps, logged as metric histories (the WiSE-FT α curve: step = round(100·α))."""


def uses_cached_features(method: Method, cfg: TrialConfig) -> bool:
    """Frozen-backbone methods without per-image augmentation or mixing train on precomputed features."""
    return method.frozen_backbone and not cfg.augment.image_ops and not cfg.augment.mixing


def trial_data(cfg: TrialConfig, method: Method, image_size: int, resampling: str) -> DataBundle:
    """The splits a trial of `cfg` reads, decoded (through the decoded-image store) as it reads them: the train
    split at the store size when random crops read it, and not at all when the method does not train."""
    crops = method.trains and not uses_cached_features(method, cfg) and cfg.augment.crop_scale
    train_size = store_size(cfg.data, image_size) if crops else None  # random crops read a larger stored image
    return load_dataset(cfg.data, image_size, resampling, method.trains, train_size)


class Trainer:
    def __init__(
        self,
        cfg: TrialConfig,
        callbacks: Sequence[Callback] = (),
        resume_from: str | Path | None = None,
        prepare: bool = True,
    ):
        """`prepare=False` (a dry run) builds the model, the data and the optimizer but leaves the splits
        unprepared: no features are extracted, nothing is moved to the device."""
        self.cfg = cfg
        self.callbacks = list(callbacks)
        self.rank, self.world_size = world()
        self.device = resolve_device(cfg.train.device)
        self.autocast_dtype = resolve_precision(cfg.train.precision, self.device)
        seed_everything(cfg.train.seed)
        self.built = build_model(cfg.model, self.device)
        self.resampling = resolve_interpolation(cfg.model.interpolation, self.built.interpolation)
        size = self.built.image_size
        self.method = METHODS.get(cfg.method)()
        self.data: DataBundle = trial_data(cfg, self.method, size, self.resampling)
        self.transfer = open_transfer_sets(cfg, self.data, size, self.resampling)  # new classes, retention sets
        ctx = BuildContext(cfg, self.built, self.data, self.device)
        self.objective = build_objective(self.method, ctx)  # first: a distillation teacher copies the original
        self.model = self.method.build(ctx).to(self.device)
        apply_token_masking(self.method, self.model, cfg)
        hold_weights_in(self.model.clip, cfg.model.weights_dtype)
        self.wise_origin = self.method.ensemble_origin(self.model) if cfg.wise.enabled and self.method.trains else None
        self.trainable_params, self.total_params = self.model.param_counts()
        self.cached = uses_cached_features(self.method, cfg)
        mean, std, resampling = self.built.mean, self.built.std, self.resampling
        self.train_transform = build_train_transform(cfg.augment, size, mean, std, resampling).to(self.device)
        self.eval_transform = build_eval_transform(size, mean, std, resampling).to(self.device)
        eval_batch_size = cfg.train.eval_batch_size or 2 * cfg.train.batch_size
        train = cfg.train
        self.evaluator = Evaluator(
            self.device, self.eval_transform, eval_batch_size, self.autocast_dtype, train.attention, train.prefetch
        )
        if train.compile:
            compile_towers(self.model.clip)
        self.mix = MixBatch(cfg.augment, self.data.num_classes)
        # a method that does not train (zero-shot) never reads the train split: not decoded, not encoded
        splits = ("train", "val", "test") if self.method.trains else ("val", "test")
        self.sources = {name: self._source(name) for name in splits} if prepare else {}
        self.num_epochs = self._num_epochs()
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.best: dict[str, Any] | None = None
        self.optimizer = self.scheduler = None
        if self.num_epochs and not self.method.closed_form(cfg):
            self.optimizer = build_optimizer(self.method.param_groups(self.model, cfg), cfg.train, self.device)
            self.scheduler = build_scheduler(self.optimizer, cfg.train, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)
        self._check_fp16_weights()
        if resume_from is not None:
            self.load_checkpoint(resume_from)

    @property
    def runtime(self) -> dict[str, str]:
        """Where the trial really runs and in which precision (`train.device`/`precision: auto` resolved)."""
        return {"device": device_name(self.device), "precision": PRECISION_NAMES[self.autocast_dtype]}

    def _check_fp16_weights(self) -> None:
        """Fail fast where fp16 weights that train cannot: torch's fp16 loss scaler refuses to unscale fp16
        gradients, and an AdamW eps below fp16's smallest step (6e-8; the default 1e-8) rounds to 0 there,
        so every gradient whose square underflows divides by 0 (inf or NaN weights at the first step)."""
        trains_fp16 = any(p.requires_grad and p.dtype == torch.float16 for p in self.model.parameters())
        if self.optimizer is None or not trains_fp16:
            return
        if self.scaler.is_enabled():
            raise ConfigError(
                "model.weights_dtype: fp16 with train.precision: fp16: the fp16 gradient scaler cannot unscale the "
                "gradients of fp16 weights; set train.precision: fp32 (the fp16 weights then compute in fp16, as "
                "OpenAI's clip.load does) or bf16, or model.weights_dtype: bf16 or fp32"
            )
        eps = self.cfg.train.adam_eps
        if self.cfg.train.optimizer == "adamw" and torch.tensor(eps, dtype=torch.float16).item() == 0:
            raise ConfigError(
                f"model.weights_dtype: fp16 with train.optimizer: adamw and train.adam_eps {eps:g}: that eps is 0 "
                "in fp16, so fp16 weights whose squared gradient underflows become inf or NaN at the first step; "
                "set train.adam_eps: 1.0e-6, or model.weights_dtype: bf16, or train.optimizer: sgd"
            )

    # ----- data -------------------------------------------------------------------------------
    def _num_epochs(self) -> int:
        if not self.method.trains:
            return 0
        return 1 if self.method.closed_form(self.cfg) else self.cfg.train.epochs

    @property
    def steps_per_epoch(self) -> int:
        return -(-(len(self.data.train) // self.world_size) // self.cfg.train.batch_size)

    def _source(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) of a split: cached features, or uint8 images (on the GPU when they fit, else
        streamed from host memory batch by batch); labels on the device."""
        data = getattr(self.data, split)
        if self.cached:
            return self._features(split), data.labels.to(self.device)
        images = data.images
        if self.device.type == "cuda" and images.numel() <= GPU_RESIDENT_BYTES:
            images = images.to(self.device)
        return images, data.labels.to(self.device)

    def feature_key(self, split: str) -> dict[str, Any]:
        """What the cached features of `split` depend on: the weights and how they are built (activation),
        the split's pixels, how they reach the model (resolution, resampling, mean/std) and the precision
        they are computed in. Any difference is another entry, never a wrong reuse."""
        cfg, built = self.cfg, self.built
        key = {
            "arch": cfg.model.arch,
            "pretrained": cfg.model.pretrained,
            "data": self.data.split_fingerprints[split],
            "split": split,
            "resolution": built.image_size,
            "preprocess": {"mean": list(built.mean), "std": list(built.std), "interpolation": self.resampling},
            "activation": built.describe()["model.activation"],
            "precision": PRECISION_NAMES[self.autocast_dtype],
            "kind": "image_features/v2",
        }
        if cfg.model.weights_dtype != "fp32":
            key["weights_dtype"] = cfg.model.weights_dtype
        if cfg.model.pretrained == "none":
            key["init_seed"] = cfg.train.seed
        elif built.checkpoint is not None and os.path.isfile(built.checkpoint):  # a tag's weights can change too:
            stat = os.stat(built.checkpoint)  # a packaged file on reinstall, a re-downloaded one
            key["weights_file"] = [built.checkpoint, stat.st_size, stat.st_mtime_ns]
        return key

    def _features(self, split: str) -> torch.Tensor:
        cfg, key = self.cfg, self.feature_key(split)

        def compute() -> torch.Tensor:
            self.model.eval()
            return self.evaluator.encode(self.model.features, getattr(self.data, split).images)

        if cfg.data.feature_cache:
            features = FeatureCache(cfg.data.cache_dir).load_or_compute(key, compute)
        else:
            features = compute()
        return features.to(self.device)

    def _train_batches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's shuffled (inputs, labels) batches of the train split, augmented unless features are cached."""
        inputs, labels = self.sources["train"]
        size = self.cfg.train.batch_size
        order = torch.randperm(len(labels), generator=generator)
        if self.world_size > 1:  # equal shards, so every rank runs the same number of steps
            order = order[: len(order) - len(order) % self.world_size][self.rank :: self.world_size]
        batches = order.split(size)
        stream = BatchStream(inputs, self.device, self.cfg.train.prefetch)
        for index, x in zip(batches, stream(batches), strict=True):
            y = labels[index.to(self.device, non_blocking=True)]
            yield (x if self.cached else self.train_transform(x)), y

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.classify(x) if self.cached else self.model(x)

    # ----- one epoch --------------------------------------------------------------------------
    def _set_train_mode(self) -> None:
        self.model.train()
        if self.method.frozen_backbone:
            self.model.clip.eval()

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg.train
        torch.manual_seed(epoch_seed(cfg.seed, epoch) + self.rank)  # augmentation/dropout differ by rank
        generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))  # one shuffle, sharded
        self._set_train_mode()
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        term_sums: dict[str, torch.Tensor] = {}
        seen, steps = 0, self.steps_per_epoch
        for step, (x, y) in enumerate(self._train_batches(generator)):
            targets = y
            if self.mix.active:
                x, targets = self.mix(x, y)
            with compute(self.device, self.autocast_dtype, cfg.attention):
                logits, terms = self._forward(x, y)
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=cfg.label_smoothing)
            if not self.objective.plain:
                loss = self._objective_loss(loss, terms, term_sums, len(y))
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.world_size > 1:
                self._average_gradients(trainable)
            if cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if cfg.scheduler_step == "step":
                self.scheduler.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(dim=1) == y).sum()
            seen += len(y)
            if step % FINITE_CHECK_EVERY == 0 or step == steps - 1:
                self._check_finite(loss_sum, epoch, step)
            for callback in self.callbacks:
                callback.on_step_end(self, epoch, step + 1, steps)
        if cfg.scheduler_step == "epoch":
            self.scheduler.step()
        if self.world_size > 1:
            counts = [loss_sum, correct.to(loss_sum.dtype), torch.tensor(float(seen), device=self.device)]
            totals = torch.stack(counts + list(term_sums.values()))
            dist.all_reduce(totals)
            loss_sum, correct, seen = totals[0], totals[1], int(totals[2])
            term_sums = dict(zip(term_sums, totals[3:], strict=True))
        terms = {f"train/loss_{name}": float(total) / seen for name, total in term_sums.items()}
        return {"train/loss": float(loss_sum) / seen, "train/acc": float(correct) / seen, **terms, "_seen": seen}

    def _forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(logits, the objective's extra loss terms by name: none for plain cross-entropy)."""
        if self.objective.plain:
            return self._logits(x), {}
        return self.objective.forward(self.model, x, y)

    def _objective_loss(
        self, ce: torch.Tensor, terms: dict[str, torch.Tensor], sums: dict[str, torch.Tensor], count: int
    ) -> torch.Tensor:
        """The weighted total; each term's unweighted value (CE included) is summed for the epoch's log."""
        for name, value in {"ce": ce, **terms}.items():
            sums[name] = sums.get(name, 0) + value.detach().float() * count
        return self.objective.total(ce, terms)

    def _average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Data parallelism: every rank steps with the mean gradient over all ranks' batches.

        One flat all-reduce per step rather than torch's DistributedDataParallel: methods call the model
        through several entry points per step (image and text towers, a frozen teacher), and DDP only
        syncs what goes through its own `forward`. A parameter without a gradient on this rank adds zeros,
        so every rank reduces the same shapes even when one rank's batch left a parameter unused.
        """
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for param in params:
            if param.grad is not None:
                param.grad.copy_(flat[offset : offset + param.numel()].view_as(param.grad))
            offset += param.numel()

    def _check_finite(self, loss_sum: torch.Tensor, epoch: int, step: int) -> None:
        if not torch.isfinite(loss_sum):
            lr = self.optimizer.param_groups[0]["lr"]
            raise TrialFailed(
                f"non-finite training loss ({float(loss_sum)}) at epoch {epoch}, step {step}: lower train.lr "
                f"(last lr {lr:.3g}), set train.grad_clip, or use train.precision: bf16/fp32",
                epoch=epoch,
            )

    def _solve_epoch(self) -> dict[str, float]:
        """A closed-form method's single 'epoch': fit on the cached train features."""
        train = self.sources["train"]
        metrics = self.method.solve(self.model, train, self.sources["val"], self.cfg)
        return {**metrics, "_seen": len(train[1])}

    def predict(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, labels) of a whole split, in eval mode, both on the device."""
        self.model.eval()
        inputs, labels = self.sources[split]
        return self.evaluator.predict(self._logits, inputs, images=not self.cached), labels.to(self.device)

    def _validate(self) -> dict[str, float]:
        logits, labels = self.predict("val")
        return {
            "val/loss": float(F.cross_entropy(logits, labels)),
            "val/acc": float((logits.argmax(dim=1) == labels).float().mean()),
        }

    def _run_epoch(self, epoch: int) -> dict[str, float]:
        reset_peak_memory(self.device)
        start = time.perf_counter()
        train = self._solve_epoch() if self.method.closed_form(self.cfg) else self._train_epoch(epoch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - start
        seen = train.pop("_seen")
        metrics = {"epoch": epoch, **train, **self._validate()}
        if self.optimizer is not None:
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        metrics.update(
            epoch_time_s=elapsed,
            throughput_img_s=seen / elapsed if elapsed else 0.0,
            peak_mem_mb=peak_memory_mb(self.device),
        )
        return metrics

    # ----- the run ----------------------------------------------------------------------------
    def _record(self, epoch: int, metrics: dict[str, float]) -> bool:
        self.epoch = epoch
        self.history.append(metrics)
        if self.best is None or metrics["val/acc"] > self.best["val/acc"] or self.cfg.train.select == "last":
            state = {k: v.detach().cpu().clone() for k, v in self.model.trainable_state().items()}
            self.best = {"epoch": epoch, "val/acc": metrics["val/acc"], "state": state}
        stop = [callback.on_epoch_end(self, epoch, metrics) for callback in self.callbacks]
        return any(stop)

    def fit(self) -> TrialResult:
        for callback in self.callbacks:
            callback.on_fit_start(self)
        if not self.history:
            start = time.perf_counter()
            initial = {"epoch": 0, **self._validate()}
            initial.update(epoch_time_s=time.perf_counter() - start, peak_mem_mb=peak_memory_mb(self.device))
            if self._record(0, initial):
                return self.test()
        for epoch in range(self.epoch + 1, self.num_epochs + 1):
            if self._record(epoch, self._run_epoch(epoch)):
                break
        return self.test()

    def test(self) -> TrialResult:
        """Evaluate the selected weights (best on validation, or last) on the held-out test split."""
        selected = self.best["state"]
        self.model.load_state_dict(selected, strict=False)
        logits, labels = self.predict("test")
        evaluation = evaluate_predictions(logits, labels, self.data.classnames)
        metrics = {
            **evaluation.metrics,
            "best_epoch": self.best["epoch"],
            "best_val/acc": self.best["val/acc"],
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
        }
        metrics.update(self._transfer_metrics(evaluation.metrics["test/acc"]))  # base-to-new, retention
        result = TrialResult(
            self.cfg, self.history, metrics, evaluation.per_class, evaluation.confusion, self.data.classnames, selected
        )
        if self.wise_origin is not None:
            set_alpha = partial(self.method.set_ensemble, self.model, self.wise_origin, selected)
            curves, wise = weight_ensemble_curve(self.cfg.wise.alphas, set_alpha, self.predict, self._transfer_metrics)
            result.metrics.update(wise)
            result.curves.update(curves)
        return result

    def _transfer_metrics(self, base_acc: float) -> dict[str, float]:
        """Base-to-new and retention metrics of the model as it is now (see `engine.transfer`)."""
        clip, tokenizer = self.model.clip, self.built.tokenizer
        return transfer_metrics(self.transfer, clip, tokenizer, self.cfg, self.evaluator, base_acc)

    # ----- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: trainable weights, optimizer, scheduler, RNG, epoch."""
        return {
            "epoch": self.epoch,
            "model": {k: v.detach().cpu() for k, v in self.model.trainable_state().items()},
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "best": self.best,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = set(state["model"]) - set(self.model.trainable_state())
        if missing:
            raise ConfigError(f"checkpoint does not match this config: unexpected weights {sorted(missing)[:3]}")
        self.model.load_state_dict(state["model"], strict=False)
        if self.optimizer and state["optimizer"]:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.epoch, self.history, self.best = state["epoch"], state["history"], state["best"]

    def save_checkpoint(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".partial")
        torch.save(self.state_dict(), partial)
        os.replace(partial, path)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a `save_checkpoint` file; it is unpickled with `weights_only=True` (tensors and plain
        containers only), so a file carrying any other Python object is refused, not run."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
            held = f" ({found.group(1)})" if found else ""
            raise TrialFailed(
                f"checkpoint {path} holds a Python object{held} that is not loaded, for safety: checkpoints load "
                "with torch.load(weights_only=True), tensors and plain containers only, and this file was not "
                "written by this version's Trainer.save_checkpoint (older ones pickled NumPy RNG state). Delete "
                "it and train the trial again from the start (a study: run it again without --resume)"
            ) from error
        self.load_state_dict(state)


def run_trial(
    cfg: TrialConfig, callbacks: Sequence[Callback] = (), resume_from: str | Path | None = None
) -> TrialResult:
    """Build everything for one trial, train it, and test the selected weights."""
    return Trainer(cfg, callbacks, resume_from).fit()
