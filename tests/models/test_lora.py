"""LoRA via peft on the split open_clip model: placement, counts, exactness, merge, scale, save/load."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from clipstudy.config import LoraConfig, ModelConfig
from clipstudy.errors import ModelError
from clipstudy.models import (
    TARGET_MODULES,
    apply_lora,
    build_clip,
    count_lora_params,
    fuse_attention,
    load_lora,
    lora_state_dict,
    merge_lora,
    save_lora,
    set_lora_scale,
)

TOL = 1e-5


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_clip(ModelConfig())


@pytest.fixture(scope="module")
def inputs(tiny):
    torch.manual_seed(1)
    return torch.randn(4, 3, 32, 32), tiny.tokenizer(["a cat", "a dog", "a bird", "a photo of a truck"])


def _outputs(model: nn.Module, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    images, texts = inputs
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(texts)


def _lora(tiny, **kwargs) -> nn.Module:
    model = copy.deepcopy(tiny.model)
    apply_lora(model, LoraConfig(**kwargs))
    return model


def _perturb_b(model: nn.Module) -> None:
    torch.manual_seed(2)
    for name, param in model.named_parameters():
        if ".lora_B." in name:
            nn.init.normal_(param, std=0.5)


def _assert_same(a, b) -> None:
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def _max_diff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


def _expected_count(model: nn.Module, names: list[str], r: int) -> int:
    return sum(r * (m.in_features + m.out_features) for m in (model.get_submodule(n) for n in names))


@pytest.mark.slow
def test_vit_b32_vision_qv_r16_parameter_count():
    built = build_clip(ModelConfig(arch="ViT-B-32"))
    names = apply_lora(built.model, LoraConfig(r=16, targets=["q", "v"], towers=["vision"]))
    assert len(names) == 24
    assert count_lora_params(built.model) == 589_824 == 12 * 2 * 16 * (768 + 768)


@pytest.mark.parametrize(
    ("targets", "towers"),
    [
        (["q", "v"], ["vision"]),
        (["fc1"], ["text"]),
        (["k", "o", "fc2"], ["vision", "text"]),
        (list(TARGET_MODULES), ["vision", "text"]),
    ],
)
def test_parameter_count_matches_formula(tiny, targets, towers):
    model = copy.deepcopy(tiny.model)
    names = apply_lora(model, LoraConfig(r=4, targets=targets, towers=towers))
    assert len(names) == 2 * len(targets) * len(towers)  # 2 blocks per tower
    assert sorted({n.rsplit(".", 2)[-2] + "." + n.rsplit(".", 1)[-1] for n in names}) == sorted(
        TARGET_MODULES[t] for t in targets
    )
    assert count_lora_params(model) == _expected_count(model, names, r=4)
    if targets == ["fc1"]:  # text c_fc: 64 -> 256 in each of 2 blocks
        assert count_lora_params(model) == 2 * 4 * (64 + 256)


def test_only_adapter_weights_require_grad(tiny):
    model = _lora(tiny, targets=["q", "fc2"], towers=["vision", "text"])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert sum(p.numel() for n, p in model.named_parameters() if p.requires_grad) == count_lora_params(model)


def test_attentional_pooler_and_other_linears_are_never_hit(tiny):
    model = _lora(tiny, targets=list(TARGET_MODULES), towers=["vision", "text"])
    for name, _ in model.named_parameters():
        if ".lora_" in name:
            assert name.startswith(("visual.transformer.resblocks.", "transformer.resblocks."))


def test_zero_init_b_reproduces_base_exactly(tiny, inputs):
    model = _lora(tiny, targets=list(TARGET_MODULES), towers=["vision", "text"])
    _assert_same(_outputs(model, inputs), _outputs(tiny.model, inputs))


def test_merge_equals_unmerged_and_differs_from_base(tiny, inputs):
    model = _lora(tiny, targets=["q", "v", "fc1"], towers=["vision", "text"])
    _perturb_b(model)
    unmerged = _outputs(model, inputs)
    assert _max_diff(unmerged, _outputs(tiny.model, inputs)) > 1e-3
    merged_model = merge_lora(model)
    assert count_lora_params(merged_model) == 0
    assert all(type(m.attn.q_proj) is nn.Linear for m in merged_model.visual.transformer.resblocks)
    assert _max_diff(_outputs(merged_model, inputs), unmerged) <= TOL
    assert fuse_attention(merged_model) == 4  # exportable in open_clip's layout


def test_q_only_adapts_only_q(tiny, inputs):
    model = _lora(tiny, targets=["q"], towers=["vision"])
    _perturb_b(model)
    images, _ = inputs
    model.encode_image(images).sum().backward()
    with_grad = [n for n, p in model.named_parameters() if p.grad is not None]
    assert with_grad and all(".attn.q_proj.lora_" in n for n in with_grad)

    captured: dict[str, torch.Tensor] = {}

    def hook(key):
        return lambda _m, _i, out: captured.__setitem__(key, out.detach())

    handles = []
    for tag, net in (("lora", model), ("base", tiny.model)):
        attn = net.visual.transformer.resblocks[0].attn
        for proj in ("q_proj", "k_proj", "v_proj"):
            handles.append(getattr(attn, proj).register_forward_hook(hook(f"{tag}.{proj}")))
    with torch.no_grad():
        model.encode_image(images)
        tiny.model.encode_image(images)
    for handle in handles:
        handle.remove()
    assert torch.equal(captured["lora.k_proj"], captured["base.k_proj"])
    assert torch.equal(captured["lora.v_proj"], captured["base.v_proj"])
    assert not torch.allclose(captured["lora.q_proj"], captured["base.q_proj"])

    x = torch.randn(5, 64)
    for block, base_block in zip(
        model.visual.transformer.resblocks, tiny.model.visual.transformer.resblocks, strict=True
    ):
        with torch.no_grad():
            for proj in ("k_proj", "v_proj", "out_proj"):
                assert torch.equal(getattr(block.attn, proj)(x), getattr(base_block.attn, proj)(x))
            assert not torch.allclose(block.attn.q_proj(x), base_block.attn.q_proj(x))


@pytest.mark.parametrize(
    ("tower", "other_prefix", "untouched"), [("text", "visual.", 0), ("vision", "transformer.", 1)]
)
def test_one_tower_leaves_the_other_alone(tiny, inputs, tower, other_prefix, untouched):
    model = _lora(tiny, targets=list(TARGET_MODULES), towers=[tower])
    assert not any(".lora_" in n and n.startswith(other_prefix) for n, _ in model.named_parameters())
    _perturb_b(model)
    changed, same = _outputs(model, inputs), _outputs(tiny.model, inputs)
    assert torch.equal(changed[untouched], same[untouched])
    assert not torch.allclose(changed[1 - untouched], same[1 - untouched])


def test_scale_zero_is_base_and_one_is_trained(tiny, inputs):
    model = _lora(tiny, targets=["q", "v", "fc2"], towers=["vision", "text"])
    _perturb_b(model)
    trained = _outputs(model, inputs)
    set_lora_scale(model, 0.0)
    _assert_same(_outputs(model, inputs), _outputs(tiny.model, inputs))
    set_lora_scale(model, 0.5)
    half = _outputs(model, inputs)
    assert _max_diff(half, trained) > 1e-4
    set_lora_scale(model, 1.0)
    _assert_same(_outputs(model, inputs), trained)


def test_save_load_round_trip(tiny, inputs, tmp_path):
    model = _lora(tiny, r=8, alpha=32.0, targets=["q", "k", "fc1"], towers=["vision", "text"])
    _perturb_b(model)
    expected = _outputs(model, inputs)
    path = tmp_path / "adapter.safetensors"
    save_lora(model, path)
    fresh = _lora(tiny, r=8, alpha=32.0, targets=["q", "k", "fc1"], towers=["vision", "text"])
    load_lora(fresh, path)
    _assert_same(_outputs(fresh, inputs), expected)
    assert set(lora_state_dict(fresh)) == set(lora_state_dict(model))


def test_load_into_mismatched_adapters_fails(tiny, tmp_path):
    model = _lora(tiny, targets=["q"])
    path = tmp_path / "adapter.safetensors"
    save_lora(model, path)
    with pytest.raises(ModelError, match="do not match"):
        load_lora(_lora(tiny, targets=["v"]), path)


def test_unsplit_model_is_refused(tiny):
    model = copy.deepcopy(tiny.model)
    fuse_attention(model)
    with pytest.raises(ModelError, match="split"):
        apply_lora(model, LoraConfig())


def test_lora_train_step(tiny, inputs):
    model = _lora(tiny, targets=["q", "v"], towers=["vision"]).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    images = torch.randn(32, 3, 32, 32)
    before = _outputs(model.eval(), inputs)
    model.train()
    loss = model.encode_image(images).pow(2).mean()
    loss.backward()
    optimizer.step()
    assert _max_diff(_outputs(model.eval(), inputs), before) > 0


def _adapter_weights(model: nn.Module, kind: str) -> list[torch.Tensor]:
    return [p.detach() for n, p in model.named_parameters() if f".lora_{kind}." in n]


def test_gaussian_init_draws_a_with_std_one_over_r_and_b_zero(tiny):
    torch.manual_seed(0)
    model = _lora(tiny, r=4, init="gaussian", targets=["q", "v", "fc1"])
    a = torch.cat([w.flatten() for w in _adapter_weights(model, "A")])
    assert a.numel() > 1000
    assert float(a.std()) == pytest.approx(1 / 4, rel=0.05)  # peft: normal_(lora_A, std=1/r)
    assert float(a.mean()) == pytest.approx(0.0, abs=0.02)
    assert all(torch.count_nonzero(b) == 0 for b in _adapter_weights(model, "B"))


def test_default_init_is_kaiming_uniform_not_gaussian(tiny):
    torch.manual_seed(0)
    model = _lora(tiny, r=4, targets=["q", "v", "fc1"])
    for a in _adapter_weights(model, "A"):
        bound = 1 / a.shape[1] ** 0.5  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert float(a.abs().max()) <= bound
        assert float(a.std()) == pytest.approx(bound / 3**0.5, rel=0.15)
        assert float(a.std()) < 0.5 / 4  # far from the gaussian init's 1/r
    assert all(torch.count_nonzero(b) == 0 for b in _adapter_weights(model, "B"))
