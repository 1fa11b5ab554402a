"""Weight lookup: pretrained tags, local checkpoint files, the Hugging Face and open_clip caches, and fast, clear
failure when weights cannot be fetched (clipstudy.models.weights, through build_clip where that is what users see)."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import open_clip
import pytest

from clipstudy.config import ModelConfig
from clipstudy.errors import ModelError
from clipstudy.models import build_clip
from clipstudy.models import weights as weights_module
from clipstudy.models.weights import resolve_weights

OPENAI_MEAN, OPENAI_STD = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
QUICK_GELU_TAGS = ["openai", "laion400m_e31", "laion400m_e32", "metaclip_400m", "metaclip_fullcc"]
"""ViT-B-32's tags trained with QuickGELU (open_clip 3.3); the other 17 use GELU; all share OpenAI's
mean/std, bicubic, shortest."""


@pytest.fixture
def bare_file(tmp_path: Path) -> Path:
    """A checkpoint file with nothing beside it (its content is not read before the build)."""
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"x")
    return path


def _hub_config(path: Path, arch: str, **model_cfg) -> Path:
    """open_clip's Hub `open_clip_config.json` for `arch` beside `path`."""
    config = {
        "model_cfg": {**open_clip.get_model_config(arch), **model_cfg},
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"},
    }
    config_path = path.parent / "open_clip_config.json"
    config_path.write_text(json.dumps(config))
    return config_path


def test_unknown_tag_lists_valid_tags():
    with pytest.raises(ModelError) as info:
        build_clip(ModelConfig(arch="ViT-B-32", pretrained="not_a_tag"))
    message = str(info.value)
    assert "not_a_tag" in message and "openai" in message and "laion2b_s34b_b79k" in message


def test_tag_for_arch_without_weights():
    with pytest.raises(ModelError, match="no published weights"):
        build_clip(ModelConfig(pretrained="openai"))


def test_missing_checkpoint_file():
    with pytest.raises(ModelError, match="no such checkpoint file"):
        build_clip(ModelConfig(pretrained="/nonexistent/weights.pt"))


def _assert_fails_fast(cfg: ModelConfig) -> None:
    start = time.perf_counter()
    with pytest.raises(ModelError) as info:
        build_clip(cfg)
    elapsed = time.perf_counter() - start
    assert elapsed < 10, f"took {elapsed:.1f}s"
    message = str(info.value)
    assert "local file" in message
    folder = "~/clip-weights/ViT-B-32-laion2b_s34b_b79k"
    command = "hf download laion/CLIP-ViT-B-32-laion2B-s34B-b79K open_clip_model.safetensors open_clip_config.json"
    assert f"`{command} --local-dir {folder}`" in message
    assert f"`model.pretrained: {folder}/open_clip_model.safetensors`" in message


def test_uncached_tag_fails_fast_with_hf_hub_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _assert_fails_fast(ModelConfig(arch="ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=str(tmp_path)))


def test_uncached_tag_fails_fast_on_unreachable_network(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    if weights_module.reachable("https://huggingface.co"):
        pytest.skip("the Hugging Face Hub is reachable from here")
    _assert_fails_fast(ModelConfig(arch="ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=str(tmp_path)))


def test_unreachable_endpoint_is_detected_quickly(monkeypatch, tmp_path):
    """A black-holed endpoint (TEST-NET-1 address, RFC 5737) must not hang past the probe timeout."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://192.0.2.1")
    start = time.perf_counter()
    with pytest.raises(ModelError, match="unreachable"):
        build_clip(ModelConfig(arch="ViT-B-32", pretrained="openai", cache_dir=str(tmp_path)))
    assert time.perf_counter() - start < 10


def test_reachable_probe():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert weights_module.reachable(f"http://127.0.0.1:{port}/x")
    assert not weights_module.reachable(f"http://127.0.0.1:{port}/x")


def test_cached_hf_file_is_found(tmp_path):
    repo = tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"x")
    cfg = {"hf_hub": "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/"}
    found = weights_module.cached_checkpoint(cfg, str(tmp_path))
    assert found == str(snapshot / "open_clip_model.safetensors")


def test_cached_url_file_is_found(tmp_path):
    (tmp_path / "weights-123.pt").write_bytes(b"x")
    cfg = {"url": "https://example.com/a/weights-123.pt"}
    assert weights_module.cached_checkpoint(cfg, str(tmp_path)) == str(tmp_path / "weights-123.pt")
    assert weights_module.cached_checkpoint({"url": "https://example.com/other.pt"}, str(tmp_path)) is None


def test_vit_b_32_tags_disagree_on_quick_gelu_only():
    """The finding behind `model.pretrained_tag`: one file of ViT-B-32 weights is built two ways."""
    tags = open_clip.list_pretrained_tags_by_model("ViT-B-32")
    quick = [t for t in tags if resolve_weights("ViT-B-32", "none", None, t).quick_gelu]
    assert quick == QUICK_GELU_TAGS and len(tags) == 22
    preprocess = {tuple(sorted(resolve_weights("ViT-B-32", "none", None, t).preprocess.items())) for t in tags}
    assert preprocess == {
        (("interpolation", "bicubic"), ("mean", OPENAI_MEAN), ("resize_mode", "shortest"), ("std", OPENAI_STD))
    }


def test_bare_file_of_an_arch_whose_tags_disagree_asks_for_the_tag(bare_file):
    with pytest.raises(ModelError) as info:
        resolve_weights("ViT-B-32", str(bare_file), None)
    message = str(info.value)
    assert "different activation (QuickGELU: " + ", ".join(QUICK_GELU_TAGS) + "; GELU: laion2b_e16," in message
    assert "`model.pretrained_tag: openai` or `model.pretrained_tag: laion2b_e16`" in message
    assert str(bare_file) in message and "open_clip_config.json" in message


def test_tags_that_disagree_on_preprocessing_are_named():
    with pytest.raises(ModelError) as info:
        resolve_weights("ViT-L-14", __file__, None)
    message = str(info.value)
    assert "different activation, mean, std (" in message
    assert "GELU, mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5): laion2b_s32b_b82k)" in message


@pytest.mark.parametrize(("tag", "quick_gelu"), [("openai", True), ("laion2b_s34b_b79k", False)])
def test_pretrained_tag_gives_a_bare_file_its_build(bare_file, tag, quick_gelu):
    source = resolve_weights("ViT-B-32", str(bare_file), None, tag)
    assert (source.checkpoint, source.quick_gelu, source.origin) == (str(bare_file), quick_gelu, f"tag '{tag}'")
    assert (source.preprocess["mean"], source.preprocess["std"]) == (OPENAI_MEAN, OPENAI_STD)


def test_unknown_pretrained_tag_lists_the_arch_tags(bare_file):
    with pytest.raises(
        ModelError,
        match=r"model\.pretrained_tag: unknown tag 'opena' for 'ViT-B-32'; valid tags: "
        r"openai, laion400m_e31, .*, metaclip_fullcc; or remove model\.pretrained_tag",
    ):
        resolve_weights("ViT-B-32", str(bare_file), None, "opena")


def test_tags_that_agree_build_a_bare_file_their_way(bare_file):
    rn50 = resolve_weights("RN50", str(bare_file), None)
    assert rn50.quick_gelu and rn50.origin == "the tags of 'RN50' (all agree)"
    siglip = resolve_weights("ViT-B-16-SigLIP", str(bare_file), None)
    assert not siglip.quick_gelu
    assert (siglip.preprocess["mean"], siglip.preprocess["resize_mode"]) == ((0.5, 0.5, 0.5), "squash")


def test_arch_without_tags_builds_a_bare_file_as_configured(bare_file):
    source = resolve_weights("clipstudy-tiny", str(bare_file), None)
    assert (source.quick_gelu, source.preprocess) == (False, {})


def test_hub_config_beside_the_file_gives_its_build(bare_file):
    config_path = _hub_config(bare_file, "ViT-B-32", quick_gelu=True)
    source = resolve_weights("ViT-B-32", str(bare_file), None)
    assert (source.quick_gelu, source.origin) == (True, str(config_path))
    assert source.preprocess == {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"}


def test_hub_config_of_another_model_is_refused(bare_file):
    config_path = _hub_config(bare_file, "ViT-B-16")
    with pytest.raises(ModelError) as info:
        resolve_weights("ViT-B-32", str(bare_file), None)
    message = str(info.value)
    assert f"{config_path} describes another model than model.arch 'ViT-B-32'" in message
    assert "vision_cfg.patch_size: 16 in the file, 32 in the architecture" in message
    assert "set model.arch" in message
    _hub_config(bare_file, "ViT-B-32")  # GELU, but the architecture is the QuickGELU variant
    with pytest.raises(ModelError, match="quick_gelu: false in the file, true in 'ViT-B-32-quickgelu'"):
        resolve_weights("ViT-B-32-quickgelu", str(bare_file), None)


def test_pretrained_tag_contradicting_the_hub_config_is_refused(bare_file):
    _hub_config(bare_file, "ViT-B-32", quick_gelu=True)
    with pytest.raises(
        ModelError,
        match=r"model\.pretrained_tag 'laion2b_s34b_b79k' builds 'ViT-B-32' as GELU.*"
        r"says QuickGELU, mean \(0\.5, 0\.5, 0\.5\), std \(0\.25, 0\.25, 0\.25\), interpolation bilinear",
    ):
        resolve_weights("ViT-B-32", str(bare_file), None, "laion2b_s34b_b79k")


def test_pretrained_tag_contradicting_a_tag_is_refused():
    with pytest.raises(ModelError, match=r"model\.pretrained_tag 'openai' contradicts model\.pretrained 'laion2b_e16'"):
        resolve_weights("ViT-B-32", "laion2b_e16", None, "openai")


def test_offline_hint_from_the_hub_names_files_that_resolve_as_the_tag(tmp_path):
    """Following the hint (files as `hf download --local-dir` leaves them) gives the tag's build from the json."""
    tag_cfg = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    hint = weights_module.offline_hint("ViT-B-32", "openai", tag_cfg)
    files = re.search(r"`hf download timm/vit_base_patch32_clip_224\.openai (\S+) (\S+) --local-dir (\S+)`", hint)
    pretrained = re.search(r"`model\.pretrained: (\S+)`", hint).group(1)
    assert files.groups() == ("open_clip_model.safetensors", "open_clip_config.json", "~/clip-weights/ViT-B-32-openai")
    assert pretrained == f"{files.group(3)}/{files.group(1)}"
    local = tmp_path / Path(pretrained).relative_to("~")
    local.parent.mkdir(parents=True)
    local.write_bytes(b"x")
    hub_json = {
        "model_cfg": {**open_clip.get_model_config("ViT-B-32"), "quick_gelu": True},
        "preprocess_cfg": {"mean": list(OPENAI_MEAN), "std": list(OPENAI_STD)},
    }  # as the Hub repo has it
    (local.parent / files.group(2)).write_text(json.dumps(hub_json))
    from_file = resolve_weights("ViT-B-32", str(local), None)
    from_tag = resolve_weights("ViT-B-32", "none", None, "openai")
    assert from_file.quick_gelu == from_tag.quick_gelu is True
    assert tuple(from_file.preprocess["mean"]) == from_tag.preprocess["mean"] == OPENAI_MEAN


def test_offline_hint_from_a_url_names_the_tag():
    hint = weights_module.offline_hint("ViT-B-32", "openai", {"url": "https://example.com/clip/ViT-B-32.pt"})
    assert (
        "`curl -L --create-dirs -o ~/clip-weights/ViT-B-32-openai/ViT-B-32.pt https://example.com/clip/ViT-B-32.pt`"
        in hint
    )
    assert "`model.pretrained: ~/clip-weights/ViT-B-32-openai/ViT-B-32.pt` with `model.pretrained_tag: openai`" in hint


def test_a_packaged_tag_resolves_to_its_folder_like_any_local_file():
    from clipstudy.models.names import MICRO_ARCH, PACKAGED_WEIGHTS, WEIGHTS_FILE

    folder = PACKAGED_WEIGHTS[MICRO_ARCH]["synthetic"]
    source = resolve_weights(MICRO_ARCH, "synthetic", None)
    assert source.checkpoint == str(folder / WEIGHTS_FILE) and source.origin == str(folder / "open_clip_config.json")
    assert source.preprocess["mean"] == list(OPENAI_MEAN) and not source.quick_gelu
    with pytest.raises(ModelError, match=r"valid tags: synthetic"):
        resolve_weights(MICRO_ARCH, "openai", None)


def test_a_missing_packaged_file_says_how_to_get_it_back(monkeypatch, tmp_path):
    from clipstudy.models import names

    monkeypatch.setitem(names.PACKAGED_WEIGHTS, names.MICRO_ARCH, {"synthetic": tmp_path / "gone"})
    with pytest.raises(ModelError, match=r"ships with clipstudy, but .*gone.* reinstall.*pretrain_micro_clip"):
        resolve_weights(names.MICRO_ARCH, "synthetic", None)
