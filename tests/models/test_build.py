"""build_clip: the tiny architecture offline, other open_clip architectures, clear errors for what cannot be
built (weight lookup is tests/models/test_weights.py)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU
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
    build_model,
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


@pytest.fixture(scope="module")
def quick_gelu_vit_b_32(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """Random ViT-B-32 weights trained, as it were, with QuickGELU (as OpenAI's), saved as the Hub names them."""
    torch.manual_seed(0)
    reference = open_clip.create_model("ViT-B-32", force_quick_gelu=True).eval()
    path = tmp_path_factory.mktemp("hub") / "open_clip_model.safetensors"
    save_file(reference.state_dict(), str(path))
    return reference, path


def _assert_same_features(built: BuiltModel, reference: torch.nn.Module) -> None:
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(built.model.encode_image(images), reference.encode_image(images), atol=1e-4)


def test_file_beside_its_open_clip_config_builds_as_the_json_says(quick_gelu_vit_b_32):
    reference, path = quick_gelu_vit_b_32
    config_path = path.parent / "open_clip_config.json"
    hub_config = {
        "model_cfg": {**open_clip.get_model_config("ViT-B-32"), "quick_gelu": True},
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"},
    }
    config_path.write_text(json.dumps(hub_config))
    try:
        built = build_clip(ModelConfig(arch="ViT-B-32", pretrained=str(path)))
    finally:
        config_path.unlink()
    assert isinstance(built.model.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert isinstance(built.model.transformer.resblocks[-1].mlp.gelu, QuickGELU)
    _assert_same_features(built, reference)
    assert built.describe() == {
        "model.activation": "quick_gelu",
        "model.preprocess.image_size": "224",
        "model.preprocess.mean": "0.5,0.5,0.5",
        "model.preprocess.std": "0.25,0.25,0.25",
        "model.preprocess.interpolation": "bilinear",
        "model.preprocess.resize_mode": "shortest",
        "model.preprocess.source": str(config_path),
    }


def test_bare_file_with_pretrained_tag_builds_as_the_tag(quick_gelu_vit_b_32):
    reference, path = quick_gelu_vit_b_32
    built = build_clip(ModelConfig(arch="ViT-B-32", pretrained=str(path), pretrained_tag="openai"))
    assert isinstance(built.model.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
    _assert_same_features(built, reference)
    assert (built.mean, built.std) == (open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    assert (built.quick_gelu, built.interpolation, built.build_source) == (True, "bicubic", "tag 'openai'")


def test_bare_file_without_pretrained_tag_is_refused(quick_gelu_vit_b_32):
    _, path = quick_gelu_vit_b_32
    with pytest.raises(ModelError, match=r"set model\.pretrained_tag .*`model\.pretrained_tag: openai` or "):
        build_clip(ModelConfig(arch="ViT-B-32", pretrained=str(path)))


def test_file_beside_a_config_of_another_model_is_refused(tmp_path):
    path = tmp_path / "open_clip_model.safetensors"
    path.write_bytes(b"x")
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": open_clip.get_model_config("ViT-B-32")}))
    with pytest.raises(ModelError, match=r"describes another model than model\.arch 'clipstudy-tiny' \(embed_dim: 512"):
        build_clip(ModelConfig(pretrained=str(path)))


def test_built_models_describe_their_activation_and_preprocessing():
    tiny = build_clip(ModelConfig()).describe()
    assert (tiny["model.activation"], tiny["model.preprocess.interpolation"]) == ("gelu", "bicubic")
    assert tiny["model.preprocess.mean"] == "0.48145466,0.4578275,0.40821073"
    resnet = build_model(ModelConfig(arch="torchvision/resnet18")).describe()
    assert resnet["model.activation"] == "n/a"
    assert (resnet["model.preprocess.interpolation"], resnet["model.preprocess.mean"]) == (
        "bilinear",
        "0.485,0.456,0.406",
    )
    assert resnet["model.preprocess.source"] == "torchvision's ResNet18_Weights.IMAGENET1K_V1 transforms"
    with pytest.raises(
        ModelError, match=r"'torchvision/resnet18' is a torchvision backbone: remove model\.pretrained_tag"
    ):
        build_model(ModelConfig(arch="torchvision/resnet18", pretrained_tag="openai"))
