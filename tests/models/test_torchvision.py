"""Image-only torchvision backbones (seed 001's ResNet50 baseline): random build, weights offline, the engine
with head lr 10x the backbone's, and clear errors for what needs a text tower."""

from __future__ import annotations

import os
import time

import pytest
import torch
import torchvision
from torch import nn

from clipstudy.config import ModelConfig
from clipstudy.engine import Trainer
from clipstudy.errors import ConfigError, ModelError
from clipstudy.models import build_model, list_architectures
from clipstudy.models import weights as weights_module
from clipstudy.models.classifier import BATCH_NORMS
from clipstudy.models.torchvision_backbones import ImageOnlyModel
from tests.conftest import interrupted_after_first_epoch

RESNET50 = "torchvision/resnet50"


def test_resnet50_builds_with_random_weights_and_no_imagenet_head():
    built = build_model(ModelConfig(arch=RESNET50))
    assert RESNET50 in list_architectures()
    assert isinstance(built.model, ImageOnlyModel) and not built.has_text and built.tokenizer is None
    assert built.image_size == 224
    assert built.mean == (0.485, 0.456, 0.406) and built.std == (0.229, 0.224, 0.225)
    assert isinstance(built.model.visual.fc, nn.Identity) and built.model.visual.output_dim == 2048
    assert sum(p.numel() for p in built.model.parameters()) == 23_508_032  # ResNet50 without its 1000-way fc
    assert not built.model.training
    small = build_model(ModelConfig(arch=RESNET50, image_size=32))
    assert small.image_size == 32
    with torch.no_grad():
        assert small.model.encode_image(torch.randn(2, 3, 32, 32)).shape == (2, 2048)


def test_uncached_imagenet_weights_fail_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setattr(weights_module, "reachable", lambda url, timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(ModelError) as info:
        build_model(ModelConfig(arch=RESNET50, pretrained="imagenet", cache_dir=str(tmp_path)))
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in message  # IMAGENET1K_V2
    assert "unreachable" in message and "model.pretrained" in message and str(tmp_path) in message


def test_cached_imagenet_weights_and_local_files_load(tmp_path):
    torch.manual_seed(3)
    reference = torchvision.models.resnet18()
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    torch.save(reference.state_dict(), tmp_path / os.path.basename(url))
    cached = build_model(ModelConfig(arch="torchvision/resnet18", pretrained="imagenet", cache_dir=str(tmp_path)))
    local = build_model(ModelConfig(arch="torchvision/resnet18", pretrained=str(tmp_path / os.path.basename(url))))
    for built in (cached, local):
        assert torch.equal(built.model.visual.conv1.weight, reference.conv1.weight)
        assert torch.equal(built.model.visual.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)


def test_unknown_tag_and_arch_list_the_valid_ones():
    with pytest.raises(ModelError, match="IMAGENET1K_V2") as info:
        build_model(ModelConfig(arch=RESNET50, pretrained="imagenet22k"))
    assert "imagenet22k" in str(info.value)
    with pytest.raises(ModelError, match="torchvision/resnet50"):
        build_model(ModelConfig.model_construct(arch="torchvision/resnet51"))  # a config that skipped validation


def _resnet_config(tiny_config, method: str = "full_ft", **overrides):
    base = {
        "model__arch": "torchvision/resnet18",
        "model__image_size": 32,
        "data__samples_per_class": 6,
        "train__batch_size": 64,
    }
    return tiny_config(method, **{**base, **overrides})


@pytest.mark.parametrize(
    ("method", "overrides", "field"),
    [
        ("zero_shot", {}, "method: zero_shot"),
        ("linear_probe", {"head__kind": "text"}, "head.kind: text"),
        ("full_ft", {"head__kind": "text"}, "head.kind: text"),
        ("lora", {"head__kind": "text", "lora__towers": ["vision", "text"]}, r"lora.towers: \[text\]"),
    ],
)
def test_methods_needing_text_reject_an_image_only_backbone(tiny_config, method, overrides, field):
    with pytest.raises(ConfigError, match=f"model.arch 'torchvision/resnet18' .*no text tower.*{field}"):
        Trainer(_resnet_config(tiny_config, method, **overrides))


def test_lora_rejects_a_backbone_without_attention_blocks(tiny_config):
    with pytest.raises(ModelError, match=r"lora.towers: LoRA on the vision tower .*\(ResNet\) has none"):
        Trainer(_resnet_config(tiny_config, "lora"))


def test_layer_decay_needs_blocks(tiny_config):
    with pytest.raises(ConfigError, match=r"train\.layer_decay"):
        Trainer(_resnet_config(tiny_config, train__layer_decay=0.8))


@pytest.mark.slow
def test_resnet50_fine_tunes_through_the_engine_with_head_lr_10x_backbone(tiny_config):
    cfg = _resnet_config(
        tiny_config,
        model__arch=RESNET50,
        train__lr=1e-3,
        train__head_lr_mult=10.0,
        train__scheduler="constant",
        train__select="last",
    )
    trainer = Trainer(cfg)
    assert trainer.steps_per_epoch == 1
    lrs = {group["name"]: group["lr"] for group in trainer.optimizer.param_groups}
    assert {name.split(".")[0] for name in lrs} == {"head", "backbone"}
    for name, lr in lrs.items():
        assert lr == pytest.approx(1e-2 if name.startswith("head") else 1e-3), name
    visual = trainer.model.clip.visual
    conv_before = visual.conv1.weight.detach().clone()
    result = trainer.fit()
    assert [h["epoch"] for h in result.history] == [0, 1]
    assert torch.isfinite(torch.tensor(result.history[1]["train/loss"]))
    assert not torch.equal(visual.conv1.weight, conv_before)
    assert result.metrics["trainable_params"] == result.metrics["total_params"] == 23_508_032 + 2048 * 4 + 4
    batch_norm_stats = {
        f"clip.visual.{name}.{buffer}"
        for name, module in visual.named_modules()
        if isinstance(module, BATCH_NORMS)
        for buffer in ("running_mean", "running_var", "num_batches_tracked")
    }
    assert len(batch_norm_stats) == 53 * 3
    assert batch_norm_stats <= set(result.weights)  # the tested model keeps the statistics it trained with
    assert result.weights["clip.visual.bn1.num_batches_tracked"].item() == 1


@pytest.mark.slow
def test_resumed_resnet_keeps_its_batch_norm_statistics(tiny_config, tmp_path):
    """A checkpoint holds the running statistics too: resuming equals training straight through."""
    cfg = _resnet_config(tiny_config, train__epochs=2, train__select="last", train__batch_size=8)
    straight = Trainer(cfg).fit()

    resumed = Trainer(cfg, resume_from=interrupted_after_first_epoch(cfg, tmp_path))
    assert resumed.steps_per_epoch == 2
    result = resumed.fit()
    assert straight.weights.keys() == result.weights.keys()
    assert "clip.visual.layer4.1.bn2.running_var" in result.weights
    assert result.weights["clip.visual.bn1.num_batches_tracked"].item() == 2 * 2  # 2 epochs of 2 batches
    for name, value in straight.weights.items():
        torch.testing.assert_close(result.weights[name], value, rtol=0, atol=0, msg=name)
    assert [h["val/loss"] for h in straight.history] == [h["val/loss"] for h in result.history]
