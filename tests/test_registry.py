import pytest

from clipstudy.errors import ConfigError
from clipstudy.registry import Registry


def test_names_are_sorted_and_can_be_filtered():
    things = Registry("thing", ConfigError)
    for name, size in [("b", 2), ("a", 1), ("c", 3)]:
        things.register(name)(size)
    assert things.names() == ["a", "b", "c"] == list(things)
    assert things.names(where=lambda size: size > 1) == ["b", "c"]
    with pytest.raises(ConfigError, match=r"unknown thing 'd'; valid: a, b, c"):
        things.get("d")
    with pytest.raises(ValueError, match="registered twice"):
        things.register("a")(4)
