import pytest

from clipstudy.config import parse_override, parse_value
from clipstudy.errors import ConfigError


def test_overrides_are_yaml_values():
    assert parse_override("train.lr=3e-4") == ("train.lr", 3e-4)
    assert parse_override("lora.targets=[q,v]") == ("lora.targets", ["q", "v"])
    assert parse_override(" train.device = cpu") == ("train.device", "cpu")


def test_yaml_values_that_are_numbers_in_disguise_become_floats():
    assert parse_value("1e-3") == 1e-3
    assert parse_value("true") is True
    assert parse_value("") is None
    assert parse_value("ViT-B-32") == "ViT-B-32"


@pytest.mark.parametrize("text", ["train.lr", "=3"])
def test_an_override_without_key_and_value_is_refused(text):
    with pytest.raises(ConfigError, match="key=value"):
        parse_override(text)
