"""BuildContext's class prompts: custom templates and class names, and what a training step encodes."""

from __future__ import annotations

import pytest
import torch

from clipstudy.data import load_dataset
from clipstudy.errors import ConfigError
from clipstudy.methods.base import BuildContext, prompt_classnames
from clipstudy.models import build_model
from clipstudy.models.text import ClassPrompts

CUSTOM = ["a photo of a {}.", "a drawing of a {}.", "a {} in the wild."]
NAMES = ["red square", "blue circle", "green star", "yellow cross"]


def context(cfg) -> BuildContext:
    torch.manual_seed(cfg.train.seed)
    built = build_model(cfg.model)
    return BuildContext(cfg, built, load_dataset(cfg.data, built.image_size), torch.device("cpu"))


def prompt_texts(ctx: BuildContext) -> list[str]:
    return [template.format(name) for name in ctx.classnames for template in ctx.templates]


def test_dataset_names_and_templates_by_default(tiny_config):
    ctx = context(tiny_config("zero_shot"))
    assert ctx.classnames == ["class 0", "class 1", "class 2", "class 3"] and ctx.templates == ["a photo of a {}."]


def test_custom_templates_and_classnames_make_the_prompts(tiny_config):
    ctx = context(tiny_config("zero_shot", prompts__custom=CUSTOM, prompts__classnames=NAMES))
    assert ctx.templates == CUSTOM and ctx.classnames == NAMES
    prompts = ctx.prompt_tokens()
    assert isinstance(prompts, ClassPrompts) and prompts.tokens.shape == (4, 3, 77)
    assert torch.equal(prompts.all_tokens(), ctx.built.tokenizer(prompt_texts(ctx)))
    assert prompt_texts(ctx)[:2] == ["a photo of a red square.", "a drawing of a red square."]
    single = context(tiny_config("zero_shot", prompts__custom=CUSTOM, prompts__templates="single"))
    assert single.templates == ["a photo of a {}."]


def test_zero_shot_weights_come_from_the_custom_prompts(tiny_config):
    ctx = context(tiny_config("zero_shot", prompts__custom=CUSTOM, prompts__classnames=NAMES))
    default = context(tiny_config("zero_shot"))
    weights = ctx.class_embeddings()
    assert weights.shape == (4, 64)
    assert not torch.allclose(weights, default.class_embeddings(), atol=1e-3)


def test_a_wrong_count_of_classnames_names_the_key_and_both_counts(tiny_config):
    ctx = context(tiny_config("zero_shot", prompts__classnames=["a", "b", "c"]))
    with pytest.raises(ConfigError, match=r"prompts\.classnames lists 3 names, but data\.name 'synthetic' has 4 "):
        ctx.prompt_tokens()


def test_base_to_new_takes_the_trial_classes_or_the_whole_dataset(tiny_config):
    six = {"data__num_classes": 6, "data__samples_per_class": 20, "data__classes": "base"}
    names = [f"thing {i}" for i in range(6)]
    whole = context(tiny_config("zero_shot", prompts__classnames=names, **six))
    assert prompt_classnames(whole.cfg, whole.data) == (names[:3], names[3:])
    trial = context(tiny_config("zero_shot", prompts__classnames=names[:3], **six))
    assert prompt_classnames(trial.cfg, trial.data) == (names[:3], ["class 3", "class 4", "class 5"])
    wrong = context(tiny_config("zero_shot", prompts__classnames=names[:5], **six))
    with pytest.raises(ConfigError, match=r"lists 5 names.*has 3 classes \(data\.classes: base; 6 with the new"):
        prompt_classnames(wrong.cfg, wrong.data)


def test_raw_classnames_are_the_names_as_the_dataset_stores_them(tiny_config, tmp_path):
    from tests.data.test_datasets import make_imagefolder

    folder = {"data__name": "imagefolder", "data__root": str(make_imagefolder(tmp_path / "images", per_class=10))}
    readable = context(tiny_config("zero_shot", prompts__custom=["a photo of a {}"], **folder))
    raw = context(tiny_config("zero_shot", prompts__custom=["a photo of a {}"], prompts__classnames="raw", **folder))
    assert readable.classnames == ["blue thing", "green thing", "red thing"]
    assert raw.classnames == ["blue_thing", "green_thing", "red_thing"]
    assert prompt_texts(raw)[0] == "a photo of a blue_thing"
    assert not torch.equal(raw.prompt_tokens().all_tokens(), readable.prompt_tokens().all_tokens())


def test_raw_classnames_name_the_new_classes_of_base_to_new_too(tiny_config, tmp_path):
    from tests.data.test_datasets import make_imagefolder

    root = make_imagefolder(tmp_path / "images", per_class=10, classes=("a_b", "c_d", "e_f", "g_h"))
    base = {"data__name": "imagefolder", "data__root": str(root), "data__classes": "base"}
    ctx = context(tiny_config("zero_shot", prompts__classnames="raw", **base))
    assert prompt_classnames(ctx.cfg, ctx.data) == (["a_b", "c_d"], ["e_f", "g_h"])
    synthetic = context(tiny_config("zero_shot", prompts__classnames="raw"))  # names stored readable: the same
    assert synthetic.classnames == ["class 0", "class 1", "class 2", "class 3"]


@pytest.mark.parametrize(("mode", "rows"), [("sample", 4), ("first", 4), ("all", 12)])
def test_the_train_templates_mode_and_seed_reach_the_prompts(mode, rows, tiny_config):
    ctx = context(tiny_config("zero_shot", prompts__custom=CUSTOM, prompts__train_templates=mode, train__seed=7))
    prompts = ctx.prompt_tokens()
    assert (prompts.train_templates, prompts.seed) == (mode, 7)
    assert prompts.step_tokens().shape[0] == rows and prompts.all_tokens().shape[0] == 12
