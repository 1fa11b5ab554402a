import pytest

from clipstudy.config import load_yaml
from clipstudy.errors import ConfigError


def test_a_yaml_file_is_read(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("name: x\narms: [{name: a}]\n")
    assert load_yaml(path) == {"name": "x", "arms": [{"name": "a"}]}


def test_a_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_yaml(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [x\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_yaml(broken)
