"""ConfigError: a list of problems, each with its layer, field and message, printed one per line."""

import pickle

from clipstudy.errors import ConfigError, Problem, or_list


def test_a_message_is_one_problem():
    error = ConfigError("override 'x' must look like key=value")
    assert error.problems == [Problem("override 'x' must look like key=value")]
    assert str(error) == "override 'x' must look like key=value"


def test_problems_print_one_per_line_with_their_layer_and_field():
    problems = [
        Problem("Input should be greater than 0", "lora.r", "s.yaml: arms[0] (a).config"),
        Problem("unknown config key 'trian.lr'", layer="s.yaml: base"),
        Problem("every loss.*_weight is 0", layer="s.yaml: arms[0] (a)"),
        Problem("Input should be greater than 0", "lora.r", "s.yaml: arms[0] (a).config"),
    ]
    assert str(ConfigError(problems)).splitlines() == [
        "s.yaml: arms[0] (a).config: lora.r: Input should be greater than 0",
        "s.yaml: base: unknown config key 'trian.lr'",
        "s.yaml: arms[0] (a): every loss.*_weight is 0",
    ]
    assert len(ConfigError(problems).problems) == 3, "a repeated problem is listed once"


def test_problems_survive_pickling():
    """Ray pickles errors raised in trials: the structure must come back, not only the text."""
    error = ConfigError([Problem("bad", "train.lr", "--set train.lr=0")])
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, ConfigError) and again.problems == error.problems and str(again) == str(error)


def test_or_list_reads_as_a_sentence():
    assert (or_list(["a"]), or_list(["a", "b"]), or_list(["a", "b", "c"])) == ("a", "a or b", "a, b or c")
