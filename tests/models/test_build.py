"""build_clip: the tiny architecture offline, other open_clip architectures, clear errors for what cannot be
built (weight lookup is tests/models/test_weights.py)."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from clipstudy.config import LoraConfig, ModelConfig
from clipstudy.errors import ModelError
from clipstudy.models import (
    TINY_ARCH,
    TINY_SIGLIP_ARCH,
    BuiltModel,
    SplitMultiheadAttention,
    apply_lora,
    build_clip,
    describe_architectures,
    fuse_attention,
    list_architectures,
)
from clipstudy.models import build as build_module


def _embeddings(built: BuiltModel) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    images = torch.randn(3, 3, built.image_size, built.image_size)
    texts = built.tokenizer(["a cat", "a dog", "a photo of a bird"])
    with torch.no_grad():
        return built.model.encode_image(images), built.model.encode_text(texts)


def test_tiny_builds_offline_split_and_in_eval_mode():
    built = build_clip(ModelConfig())
    assert built.arch == TINY_ARCH == "clipstudy-tiny"
    assert built.pretrained == "none"
    assert built.image_size == 32
    assert len(built.mean) == len(built.std) == 3
    assert not built.model.training
    assert TINY_ARCH in list_architectures()
    assert "ViT-B-32" in list_architectures()
    for tower in (built.model.visual.transformer, built.model.transformer):
        assert len(tower.resblocks) == 2
        assert all(isinstance(b.attn, SplitMultiheadAttention) for b in tower.resblocks)
    tokens = built.tokenizer(["a cat", "a dog"])
    assert tokens.shape == (2, 77)
    image_features, text_features = _embeddings(built)
    assert image_features.shape == (*text_features.shape[:1], 64) == (3, 64)


def test_tiny_config_ships_inside_the_package():
    path = Path(build_module.__file__).parent / "model_configs" / f"{TINY_ARCH}.json"
    assert path.is_file()


def test_unknown_arch_lists_valid_names():
    """Configs reject unknown names (tests/test_config.py); the build still checks one that skipped validation."""
    with pytest.raises(ModelError) as info:
        build_clip(ModelConfig.model_construct(arch="ViT-B-33"))
    message = str(info.value)
    assert "ViT-B-33" in message and "ViT-B-32" in message and TINY_ARCH in message


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_checkpoint_file_loads(tmp_path, suffix):
    torch.manual_seed(123)
    built = build_clip(ModelConfig())
    exported = copy.deepcopy(built.model)
    fuse_attention(exported)  # open_clip's own layout
    path = tmp_path / f"tiny{suffix}"
    state = {k: v.contiguous() for k, v in exported.state_dict().items()}
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    loaded = build_clip(ModelConfig(pretrained=str(path)))
    assert loaded.pretrained == str(path)
    for a, b in zip(_embeddings(built), _embeddings(loaded), strict=True):
        assert torch.equal(a, b)


def test_tiny_train_step():
    built = build_clip(ModelConfig())
    model = built.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.randn(32, 3, built.image_size, built.image_size)
    target = torch.randn(32, 64)
    times = []
    for _ in range(4):
        start = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model.encode_image(images), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    assert torch.isfinite(loss)
    print(
        f"tiny train step (batch 32, fwd+bwd+AdamW): {min(times) * 1000:.1f} ms best, "
        f"{sum(times[1:]) / 3 * 1000:.1f} ms mean after warm-up"
    )


def test_open_clip_models_take_only_their_own_image_size():
    assert build_clip(ModelConfig(image_size=32)).image_size == 32
    with pytest.raises(ModelError, match=r"model\.image_size=64, but 'clipstudy-tiny' takes 32 px"):
        build_clip(ModelConfig(image_size=64))


def test_architectures_are_described_by_kind_and_tags():
    rows = {name: (kind, tags) for name, kind, tags in describe_architectures()}
    assert set(rows) == set(list_architectures())
    assert rows["ViT-B-32"][0] == "clip" and "openai" in rows["ViT-B-32"][1]
    assert rows["ViT-B-16-SigLIP"] == ("siglip", ["webli"])
    assert rows[TINY_SIGLIP_ARCH] == ("siglip", [])
    assert rows["torchvision/resnet50"] == ("image-only", ["imagenet", "IMAGENET1K_V1", "IMAGENET1K_V2"])


@pytest.mark.slow
def test_rn50_clip_builds_offline_and_lora_refuses_its_resnet_tower():
    built = build_clip(ModelConfig(arch="RN50"))
    assert built.image_size == 224 and built.model.visual.output_dim == 1024
    assert all(isinstance(b.attn, SplitMultiheadAttention) for b in built.model.transformer.resblocks)
    with pytest.raises(ModelError, match=r"lora\.towers: LoRA on the vision tower .*\(ModifiedResNet\) has none"):
        apply_lora(built.model, LoraConfig(towers=["vision"]))
    assert len(apply_lora(built.model, LoraConfig(towers=["text"]))) == 12 * 2
