"""The study schema's own methods: an arm's config from its layers, and the problems of its search space."""

import pytest

from clipstudy.errors import ConfigError, Problem
from clipstudy.studyfile import Study


def study(**arm) -> Study:
    return Study.model_validate({"name": "s", "base": {"train.epochs": 2}, "arms": [{"name": "a", **arm}]})


def test_arm_config_stacks_base_arm_params_and_overrides():
    s = study(method="lora", config={"lora.r": 4, "train.lr": 0.1})
    cfg = s.arm_config("a", overrides=["train.lr=0.2"], params={"lora.alpha": 8})
    assert (cfg.method, cfg.train.epochs, cfg.lora.r, cfg.lora.alpha, cfg.train.lr) == ("lora", 2, 4, 8, 0.2)


def test_arm_config_problems_name_the_layer_that_set_the_value():
    s = study(method="lora", config={"lora.r": 0})
    with pytest.raises(ConfigError) as error:
        s.arm_config("a", overrides=["train.lr=0"], where="f.yaml: ")
    assert error.value.problems == [
        Problem("Input should be greater than 0", "lora.r", "f.yaml: arms[0] (a).config"),
        Problem("Input should be greater than 0", "train.lr", "--set train.lr=0"),
    ]


def test_search_problems_are_listed_per_entry_and_value():
    s = study(
        method="lora",
        search={"lora.rank": {"choice": [4]}, "lora.r": {"choice": [0, 8, -1]}, "head.dropout": {"uniform": [0, 1]}},
    )
    unknown = "unknown config key 'lora.rank' (did you mean 'lora.r'?)"
    assert s.check_search(s.arms[0], where="f.yaml: ") == [
        Problem(unknown, layer="f.yaml: arms[0] (a).search.lora.rank"),
        Problem("Input should be greater than 0", "lora.r", "f.yaml: arms[0] (a).search.lora.r=0"),
        Problem("Input should be greater than 0", "lora.r", "f.yaml: arms[0] (a).search.lora.r=-1"),
    ]


def test_an_unknown_arm_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError, match=r"study 's' has no arm 'b'; arms: a"):
        study(method="lora").arm("b")


def test_fixed_values_are_the_resolved_config_as_dotted_keys():
    fixed = study(method="flyp").fixed_values(study(method="flyp").arms[0])
    assert (fixed["method"], fixed["train.epochs"], fixed["loss.contrastive_weight"]) == ("flyp", 2, 1.0)
