"""SigLIP through build_clip: the tiny SigLIP-style config (timm tower, sigmoid logit bias) offline, split
attention and LoRA on both towers, the bias in zero-shot logits, and a fast clear error for its tokenizer."""

from __future__ import annotations

import copy
import time

import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.timm_model import TimmModel
from torch import nn

from clipstudy.config import LoraConfig, ModelConfig
from clipstudy.engine import Trainer
from clipstudy.errors import ModelError
from clipstudy.methods import METHODS
from clipstudy.models import (
    TINY_SIGLIP_ARCH,
    SplitMultiheadAttention,
    SplitQKV,
    apply_lora,
    build_clip,
    count_lora_params,
    fuse_attention,
    merge_lora,
    split_attention,
)
from clipstudy.models import weights as weights_module
from clipstudy.models.build import HubTokenizer, make_tokenizer

TOL = 1e-5


@pytest.fixture(scope="module")
def tiny_siglip():
    torch.manual_seed(0)
    return build_clip(ModelConfig(arch=TINY_SIGLIP_ARCH))


@pytest.fixture(scope="module")
def inputs(tiny_siglip):
    torch.manual_seed(1)
    return torch.randn(3, 3, 32, 32), tiny_siglip.tokenizer(["a cat", "a dog", "a photo of a bird"])


def _outputs(model: nn.Module, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    images, texts = inputs
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(texts)


def _max_diff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


def test_tiny_siglip_builds_offline_with_a_timm_tower_and_a_logit_bias(tiny_siglip, inputs):
    model = tiny_siglip.model
    assert tiny_siglip.has_text and tiny_siglip.image_size == 32
    assert isinstance(model.visual, TimmModel)
    assert model.visual.output_dim == 64
    assert model.logit_bias.item() == -10.0
    assert all(isinstance(block.attn.qkv, SplitQKV) for block in model.visual.trunk.blocks)
    assert all(isinstance(block.attn, SplitMultiheadAttention) for block in model.text.transformer.resblocks)
    assert inputs[1].shape == (3, 32)  # CLIP's bundled BPE tokenizer at the config's context length
    image, text = _outputs(model, inputs)
    assert image.shape == text.shape == (3, 64)


def test_split_attention_is_exact_on_both_siglip_towers(inputs):
    torch.manual_seed(0)
    base = open_clip.create_model(TINY_SIGLIP_ARCH, pretrained=None).eval()
    split = copy.deepcopy(base)
    assert split_attention(split) == 4  # 2 timm vision blocks + 2 text blocks
    assert split_attention(split) == 0
    assert _max_diff(_outputs(base, inputs), _outputs(split, inputs)) <= TOL
    assert fuse_attention(split) == 4
    fused, original = split.state_dict(), base.state_dict()
    assert list(fused) == list(original)
    assert all(torch.equal(fused[k], original[k]) for k in original)


def test_lora_on_both_siglip_towers_counts_merges_and_starts_as_the_base(tiny_siglip, inputs):
    model = copy.deepcopy(tiny_siglip.model)
    before = _outputs(model, inputs)
    targets = ["q", "k", "v", "o", "fc1", "fc2"]
    names = apply_lora(model, LoraConfig(r=4, alpha=8, targets=targets, towers=["vision", "text"]))
    assert len(names) == 2 * 2 * 6
    assert "visual.trunk.blocks.0.attn.qkv.q_proj" in names and "visual.trunk.blocks.1.mlp.fc2" in names
    assert "text.transformer.resblocks.0.attn.v_proj" in names
    # r * (in + out) per adapted Linear: q/k/v/o 64->64, fc1 64->256, fc2 256->64, in 2 blocks of 2 towers
    assert count_lora_params(model) == 4 * 4 * (4 * (64 + 64) + 2 * (64 + 256)) == 18_432
    assert _max_diff(before, _outputs(model, inputs)) <= 1e-6  # B starts at zero
    torch.manual_seed(2)
    for name, param in model.named_parameters():
        if ".lora_B." in name:
            nn.init.normal_(param, std=0.5)
    adapted = _outputs(model, inputs)
    assert _max_diff(before, adapted) > 1e-2
    merge_lora(model)
    assert _max_diff(adapted, _outputs(model, inputs)) <= 1e-4
    assert fuse_attention(model) == 4


def test_zero_shot_logits_carry_the_sigmoid_bias(tiny_config):
    trainer = Trainer(tiny_config("zero_shot", model__arch=TINY_SIGLIP_ARCH, prompts__templates="single"))
    clip, data = trainer.model.clip, trainer.data
    assert trainer.model.head.logit_bias.item() == clip.logit_bias.item() == -10.0
    images = trainer.eval_transform(data.val.images[:8])
    prompts = trainer.built.tokenizer([data.templates[0].format(name) for name in data.classnames])
    with torch.no_grad():
        logits = trainer.model(images)
        image_features, text_features, scale, bias = clip(images, prompts)  # open_clip's own SigLIP logits
        expected = scale * image_features @ text_features.T + bias
        cosine = F.normalize(clip.encode_image(images), dim=-1) @ F.normalize(clip.encode_text(prompts), dim=-1).T
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits - scale * cosine, torch.full_like(logits, -10.0), rtol=0, atol=1e-4)


def test_clip_text_head_has_no_bias(tiny_config):
    assert Trainer(tiny_config("zero_shot")).model.head.logit_bias is None


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_trains_on_the_tiny_siglip(name, tiny_config):
    overrides = {"model__arch": TINY_SIGLIP_ARCH}
    if name == "lora":
        overrides.update(lora__towers=["vision", "text"], head__kind="text")
    result = Trainer(tiny_config(name, **overrides)).fit()
    for record in result.history:
        assert torch.isfinite(torch.tensor(record["val/loss"])), record
    assert 0.0 <= result.metrics["test/acc"] <= 1.0
    assert (result.metrics["trainable_params"] > 0) == METHODS.get(name).trains


def test_full_ft_layer_decay_and_frozen_blocks_follow_the_timm_blocks(tiny_config):
    cfg = tiny_config("full_ft", model__arch=TINY_SIGLIP_ARCH, train__lr=1e-3, train__layer_decay=0.5)
    trainer = Trainer(cfg.model_copy(update={"train": cfg.train.model_copy(update={"freeze_blocks": 1})}))
    frozen = {n for n, p in trainer.model.clip.visual.named_parameters() if not p.requires_grad}
    assert "trunk.patch_embed.proj.weight" in frozen and "trunk.pos_embed" in frozen
    assert "trunk.blocks.0.attn.qkv.q_proj.weight" in frozen
    assert not any(n.startswith(("trunk.blocks.1.", "trunk.attn_pool.")) for n in frozen)
    lrs = {g["name"]: g["initial_lr"] for g in trainer.optimizer.param_groups}
    assert lrs["backbone.layer2"] == pytest.approx(1e-3 * 0.5)  # block 1 of 2
    assert lrs["backbone.layer3"] == pytest.approx(1e-3)  # attention pool and norms above the blocks
    assert "backbone.layer1" not in lrs and "backbone.layer0" not in lrs


@pytest.mark.slow
def test_vit_b16_siglip_builds_offline_with_random_weights():
    built = build_clip(ModelConfig(arch="ViT-B-16-SigLIP"))
    model = built.model
    assert built.image_size == 224 and model.visual.output_dim == 768
    assert model.logit_bias.item() == -10.0
    assert sum(isinstance(b.attn.qkv, SplitQKV) for b in model.visual.trunk.blocks) == 12
    assert isinstance(built.tokenizer, HubTokenizer)  # not loaded until a method needs prompts
    with torch.no_grad():
        assert model.encode_image(torch.randn(1, 3, 224, 224)).shape == (1, 768)


def _assert_fast_tokenizer_error(tmp_path, match: str) -> None:
    tokenizer = make_tokenizer("ViT-B-16-SigLIP", cache_dir=str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(ModelError, match=match) as info:
        tokenizer(["a photo of a cat"])
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "'timm/ViT-B-16-SigLIP'" in message and "ViT-B-16-SigLIP" in message
    assert "hf download timm/ViT-B-16-SigLIP" in message


def test_uncached_siglip_tokenizer_fails_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _assert_fast_tokenizer_error(tmp_path, "HF_HUB_OFFLINE")


def test_uncached_siglip_tokenizer_fails_fast_without_network(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(weights_module, "reachable", lambda url, timeout=3.0: False)
    _assert_fast_tokenizer_error(tmp_path, "unreachable")


def test_hf_text_tower_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if weights_module.hub_cached("roberta-base", "config.json", None):
        pytest.skip("roberta-base is in the Hugging Face cache here")
    start = time.perf_counter()
    with pytest.raises(ModelError, match=r"'roberta-base'.*hf download roberta-base"):
        build_clip(ModelConfig(arch="roberta-ViT-B-32"))
    assert time.perf_counter() - start < 5
