import pytest

from clipstudy.config import TrialConfig, expand, flatten, leaf_keys, merge
from clipstudy.errors import ConfigError


def test_flatten_expand_roundtrip():
    tree = TrialConfig().model_dump()
    assert expand(flatten(tree)) == tree


def test_expand_takes_nested_dotted_and_mixed_keys():
    assert expand({"train": {"lr": 0.1}, "train.epochs": 3, "lora.targets": ["q"]}) == {
        "train": {"lr": 0.1, "epochs": 3},
        "lora": {"targets": ["q"]},
    }


def test_expand_refuses_a_field_inside_a_value():
    with pytest.raises(ConfigError, match=r"'train\.lr\.x' sets a field inside 'lr', which is not a section"):
        expand({"train.lr": 1, "train.lr.x": 2})


def test_merge_is_deep_and_leaves_its_inputs_alone():
    base, update = {"train": {"lr": 1, "epochs": 2}}, {"train": {"lr": 3}}
    assert merge(base, update) == {"train": {"lr": 3, "epochs": 2}}
    assert base == {"train": {"lr": 1, "epochs": 2}} and update == {"train": {"lr": 3}}


def test_leaf_keys_go_one_level_into_each_section():
    assert leaf_keys({"method": "lora", "lora": {"r": 4, "targets": ["q"]}}) == ["method", "lora.r", "lora.targets"]
